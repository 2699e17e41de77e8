"""Synthetic comparisons: the current model summarizes a book best-of-n, the SIMULATED labeler judges
pairs of each node's candidates.

Merge inputs are the summaries the current model (and bundle: the trained lower level) wrote for the
children, so a merge policy is trained on what it will really be given (Wu et al. 2021). Some pairs
get a planted false sentence (a sentence from elsewhere in the book) in one candidate: the labeler
knows what it planted, which gives the reward model clear negatives beside the natural ones.
"""

import random
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from recursum.schemas.tree import Node
from recursum.service.engine.models.runtime import ModelRuntime
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.service.engine.pipeline.node_cache import NodeCache
from recursum.service.engine.pipeline.recursion import Summarizer
from recursum.service.engine.pipeline.sentences import split_sentences
from recursum.service.engine.pipeline.tree import Tree, TreeConfig
from recursum.training.datasets import Comparison
from recursum.training.labeler import SimulatedLabeler


class SynthConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    task: Literal["chunk", "merge"]
    n: Annotated[int, Meta(ge=1)]  # comparisons to write (at most)
    best_of: Annotated[int, Meta(ge=2, le=16)] = 4  # candidates per node: greedy + samples
    max_chars: Annotated[int, Meta(ge=1000)] = 30_000  # how much of the book to summarize
    plant_share: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.25
    chunk_tokens: int = 600
    summary_tokens: int = 200
    seed: int = 0


def node_input(tree: Tree, node: Node, text: str) -> str:
    """The training input of a node: its raw passage (chunk) or its children's summaries (merge)."""
    if node.height == 0:
        return text[node.span.start : node.span.end]
    return "\n\n".join(tree.nodes[child].summary for child in node.children)


def candidate_tree(runtime: ModelRuntime, scorer: EvidenceScorer, book: Path, config: SynthConfig,
                   cache: NodeCache | None = None) -> tuple[Tree, str]:
    """`book` (its first `max_chars`) summarized best-of-n, and the normalized text the spans index;
    `cache` reuses generations of earlier runs."""
    text = book.read_text(encoding="utf-8")[: config.max_chars]
    # Merges up to one generated root (root_words=0): a composed root has no candidates to compare.
    tree_config = TreeConfig(chunk_tokens=config.chunk_tokens, summary_tokens=config.summary_tokens,
                             best_of=config.best_of, seed=config.seed, root_words=0)
    document = make_document(text, book.stem)
    return Summarizer(runtime, scorer, tree_config, cache).summarize(document), document.text


def tree_comparisons(tree: Tree, text: str, labeler: SimulatedLabeler,
                     config: SynthConfig) -> Iterator[Comparison]:
    """Labelled pairs of each node's candidates at the task's heights, some with a planted sentence."""
    nodes = [node for node in tree.nodes.values() if (node.height == 0) == (config.task == "chunk")]
    random_ = random.Random(config.seed)
    all_sentences = split_sentences(text)
    written = 0
    for node in sorted(nodes, key=lambda n: (n.height, n.index)):
        summaries = [node.summary] + [candidate.summary for candidate in node.candidates]
        source = text[node.span.start : node.span.end]
        for first, second in combinations(summaries, 2):
            if written >= config.n:
                return
            planted: list[str] = []
            if random_.random() < config.plant_share:
                first, planted = _plant(first, source, all_sentences, random_)
            pair = (first, second) if random_.random() < 0.5 else (second, first)
            yield labeler.label(
                id=f"synth:{tree.document_id[:12]}:{node.id}:{written}", task=config.task, height=node.height,
                input=node_input(tree, node, text), group=f"{tree.title}:{node.id}", candidates=pair,
                source=source, planted=planted,
            )
            written += 1


def synthesize(runtime: ModelRuntime, scorer: EvidenceScorer, labeler: SimulatedLabeler, book: Path,
               config: SynthConfig) -> Iterator[Comparison]:
    """Comparisons of candidate summaries of `book`'s nodes at the task's heights."""
    tree, text = candidate_tree(runtime, scorer, book, config)
    yield from tree_comparisons(tree, text, labeler, config)


def _plant(summary: str, source: str, book_sentences: list[str],
           random_: random.Random) -> tuple[str, list[str]]:
    """`summary` with one sentence replaced by a sentence of the book from outside `source`."""
    outside = [s for s in book_sentences if s not in source and 30 < len(s) < 240]
    sentences = split_sentences(summary)
    if not outside or not sentences:
        return summary, []
    false = random_.choice(outside)
    sentences[random_.randrange(len(sentences))] = false
    return " ".join(sentences), [false]
