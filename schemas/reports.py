"""Helper reports about one node of a finished job (evidence, critique, qa, compare)."""

from typing import Annotated, Literal

import msgspec

from recursum.schemas.tree import EvidenceLink, Sentence, Span

ReportKind = Literal["evidence", "critique", "qa", "compare"]
ReportStatus = Literal["pending", "done", "failed"]
Question = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
# One of a node's summaries: -1 is the chosen one, i its candidate i.
CandidateIndex = Annotated[int, msgspec.Meta(ge=-1, le=255)]
# A summary to compare: one of the node's, or a summary text.
SummaryRef = CandidateIndex | Annotated[str, msgspec.Meta(min_length=1, max_length=20000)]


class _ReportRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    """What a report is asked for; the request is part of the report's content address."""


class EvidenceRequest(_ReportRequest, frozen=True, kw_only=True, tag="evidence"):
    """Each sentence of one summary of the node (-1: the chosen one; i: candidate i) with its supporting
    child sentences, source spans and scores."""

    summary: CandidateIndex = -1


class CritiqueRequest(_ReportRequest, frozen=True, kw_only=True, tag="critique"):
    """Problems of one summary of the node (-1: the chosen one; i: candidate i) against its children, each
    pointing at what it is about. `sample` 0 is the greedy critique; 1, 2, ... are sampled alternatives."""

    summary: CandidateIndex = -1
    sample: Annotated[int, msgspec.Meta(ge=0, le=16)] = 0


class QaRequest(_ReportRequest, frozen=True, kw_only=True, tag="qa"):
    """A question about the node's source text, answered with cited spans."""

    question: Question


class CompareRequest(_ReportRequest, frozen=True, kw_only=True, tag="compare"):
    """Two summaries of the node side by side; by default its chosen summary and first candidate."""

    a: SummaryRef = -1
    b: SummaryRef = 0


ReportCreate = EvidenceRequest | CritiqueRequest | QaRequest | CompareRequest


class _ReportBody(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """What a finished report holds; tagged by the report's kind."""


class SupportingSentence(msgspec.Struct, frozen=True, kw_only=True):
    """A child sentence (or, under a leaf, a source sentence) that a summary sentence links to."""

    target: str  # child node id, or "source"
    sentence: int
    score: float
    text: str
    source_spans: tuple[Span, ...] = ()


class SentenceEvidence(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    text: str
    support: float
    source_support: float
    unsupported: bool
    supports: tuple[SupportingSentence, ...]
    source_spans: tuple[Span, ...]


class EvidenceReport(_ReportBody, frozen=True, kw_only=True, tag="evidence"):
    summary: str
    sentences: tuple[SentenceEvidence, ...]
    unsupported: int  # how many sentences are flagged


CritiqueKind = Literal["unsupported", "contradicted", "omission", "entity"]
CritiqueOrigin = Literal["model", "evidence"]


class CritiqueItem(msgspec.Struct, frozen=True, kw_only=True):
    """One problem. `quote` is verbatim text of the node: a summary sentence (`sentence` is its index), or
    for an omission the child/source sentence left out (`child` points at it)."""

    kind: CritiqueKind
    origin: CritiqueOrigin  # "model": the helper model said so (quote verified); "evidence": from scores
    quote: str
    sentence: int | None = None
    child: EvidenceLink | None = None
    links: tuple[EvidenceLink, ...] = ()  # the sentence's evidence links (what it was checked against)
    spans: tuple[Span, ...] = ()  # source spans the item refers to
    severity: float  # 0-1, for ranking what to check first
    explanation: str


class CritiqueReport(_ReportBody, frozen=True, kw_only=True, tag="critique"):
    items: tuple[CritiqueItem, ...]


class Citation(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    span: Span
    score: float


class QaAnswer(_ReportBody, frozen=True, kw_only=True, tag="qa"):
    question: str
    answer: str
    citations: tuple[Citation, ...]
    supported: bool  # whether some cited span supports the answer above the evidence threshold


class CompareSide(msgspec.Struct, frozen=True, kw_only=True):
    label: str  # "chosen", "candidate:<i>" or "request"
    summary: str
    sentences: tuple[Sentence, ...]
    mean_support: float
    unsupported: int
    reward: float | None = None


class AlignedPair(msgspec.Struct, frozen=True, kw_only=True):
    """Sentence `a` of side a beside sentence `b` of side b; None marks a claim only one side makes."""

    a: int | None
    b: int | None
    similarity: float


class CompareReport(_ReportBody, frozen=True, kw_only=True, tag="compare"):
    a: CompareSide
    b: CompareSide
    aligned: tuple[AlignedPair, ...]


ReportBody = EvidenceReport | CritiqueReport | QaAnswer | CompareReport


class ReportRead(msgspec.Struct, kw_only=True):
    """A stored report; `body` is set once `status` is "done"."""

    id: str
    job_id: str
    node_id: str
    kind: ReportKind
    status: ReportStatus
    request: ReportCreate
    body: ReportBody | None = None
    error: str | None = None
    created: float
    finished: float | None = None
