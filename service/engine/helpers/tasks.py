"""What a helper report is asked about: the node, its children and text, and which of its summaries.

Torch-free, so the report routes check requests and rebuild a critique's input without the model.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from recursum.schemas.reports import CompareRequest, CritiqueRequest, EvidenceRequest, ReportCreate
from recursum.schemas.tree import SOURCE, EvidenceLink, Node
from recursum.service.engine.errors import ConfigError
from recursum.service.engine.helpers.critique import MaterialSentence, critique_parts
from recursum.service.engine.pipeline.prompts import critique_input

CHOSEN = -1  # the `CandidateIndex` of a node's chosen summary; i >= 0 names its candidate i


class InvalidReportRequest(ConfigError):
    """Raised when a report request cannot apply to its node (say, a candidate index it does not have)."""


@dataclass(frozen=True)
class ReportTask:
    """One report to build: the node, its children (empty for a leaf), the document text and the
    tree's evidence settings."""

    key: str
    request: ReportCreate
    node: Node
    children: tuple[Node, ...]
    text: str
    threshold: float = 0.25
    links: int = 3


def node_material(node: Node, children: Sequence[Node], text: str) -> list[MaterialSentence]:
    """What the node was written from, in reading order: its children's sentences, or a leaf's source."""
    if node.height == 0:
        return [MaterialSentence(EvidenceLink(target=SOURCE, sentence=j, score=0.0), text[s.start : s.end],
                                 (s,)) for j, s in enumerate(node.source_sentences)]
    return [MaterialSentence(EvidenceLink(target=child.id, sentence=j, score=0.0), s.text, s.source_spans)
            for child in children for j, s in enumerate(child.sentences)]


def check_request(node: Node, request: ReportCreate) -> None:
    """Refuse what cannot apply to `node` before anything is stored: a candidate it lacks, a pair of one."""
    match request:
        case CompareRequest(a=a, b=b):
            refs = [a, b]
            if a == b:
                raise InvalidReportRequest("compare needs two different summaries (a and b are the same)")
        case CritiqueRequest(summary=summary) | EvidenceRequest(summary=summary):
            refs = [summary]
        case _:
            refs = []
    for ref in refs:
        if isinstance(ref, int) and ref >= len(node.candidates):
            raise InvalidReportRequest(
                f"node {node.id} has {len(node.candidates)} candidates: use -1 for its chosen summary"
                + (f", 0..{len(node.candidates) - 1} for a candidate" if node.candidates else "")
                + (", or pass a summary text" if isinstance(request, CompareRequest) else ""))


def summary_view(node: Node, index: int) -> Node:
    """The node as if candidate `index` (CHOSEN: the chosen summary) had been chosen."""
    if index == CHOSEN:
        return node
    candidate = node.candidates[index]
    return msgspec.structs.replace(node, summary=candidate.summary, sentences=candidate.sentences,
                                   reward=candidate.reward)


def critiqued_parts(node: Node, summary: int, children: Sequence[Node],
                    text: str) -> tuple[str, list[str], list[str]]:
    """What a critique of the node's summary `summary` reads: the node's material as one text, the summary's
    sentences, and each one's closest material sentence (`critique.critique_parts`)."""
    return critique_parts(summary_view(node, summary).sentences, node_material(node, children, text))


def critiqued_input(node: Node, summary: int, children: Sequence[Node], text: str) -> str:
    """`critiqued_parts` in the one-text form `prompts.task_prompt` reads back: the input of an exported
    `helper:critique` comparison."""
    return critique_input(*critiqued_parts(node, summary, children, text))
