"""Wire schemas: every struct that crosses the HTTP boundary, shared by the service and the client.

`clients` imports neither `service` nor `training`; the service imports these definitions, so
server and client encode and decode exactly the same types. The summary-tree structs live here for
that reason: a node travels over the wire as it is stored.
"""

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Role = Literal["chunk", "merge", "helper", "reward"]
SOURCE = "source"  # EvidenceLink.target for a height-0 sentence: it points into the original text
ContextMode = Literal["none", "preceding-text"]


class Span(msgspec.Struct, frozen=True, array_like=True, order=True):
    """Half-open character range [start, end) of the normalized document."""

    start: int
    end: int


class EvidenceLink(msgspec.Struct, frozen=True, kw_only=True):
    """A supporting sentence: `sentence` indexes node `target`'s sentences, or the leaf's
    `source_sentences` when `target` is "source"."""

    target: str
    sentence: int
    score: float


class Sentence(msgspec.Struct, frozen=True, kw_only=True):
    """One summary sentence with its evidence.

    `support` scores the best link against the node's inputs; `source_support` is the weakest
    step on the best chain down to the original text, which is what exposes a claim that a merge
    invented or that an earlier level already got wrong.
    """

    text: str
    support: float
    source_support: float
    unsupported: bool
    links: tuple[EvidenceLink, ...] = ()
    source_spans: tuple[Span, ...] = ()


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """A summary of a node that was generated but not chosen (best-of-n), kept for evaluators to compare."""

    summary: str
    sentences: tuple[Sentence, ...]
    reward: float | None = None  # the reward adapter's normalized score; None without a reward model
    source: str  # what wrote it: "sample:<i>" for best-of-n samples, "adapter:<name>" for another adapter


class Node(msgspec.Struct, frozen=True, kw_only=True):
    """A summary of `span`: a chunk at height 0, or a merge of `children` above it.

    With best-of-n, `summary` is the candidate the reward model scored best (`reward`), and the
    others are kept in `candidates`.
    """

    id: str
    key: str
    height: int
    index: int
    role: Role
    adapter: str | None
    span: Span
    children: tuple[str, ...]
    summary: str
    sentences: tuple[Sentence, ...]
    source_sentences: tuple[Span, ...] = ()
    prompt_tokens: int = 0
    generated_tokens: int = 0
    truncated: bool = False
    cached: bool = False
    reward: float | None = None
    candidates: tuple[Candidate, ...] = ()


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What generated the tree: enough to tell whether cached nodes are comparable."""

    base: str
    fingerprint: str
    quantization: str
    dtype: str
    device: str
    adapters: dict[str, str] = {}


class HeightStarted(msgspec.Struct, frozen=True, kw_only=True, tag="height_started"):
    height: int
    nodes: int
    cached: int


class HeightDone(msgspec.Struct, frozen=True, kw_only=True, tag="height_done"):
    height: int
    nodes: int


JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled"})


class HeightProgress(msgspec.Struct, kw_only=True):
    height: int
    done: int
    total: int


class CallbackAttempt(msgspec.Struct, kw_only=True):
    """One delivery attempt of a job's final event to its callback URL."""

    attempt: int
    at: float
    status_code: int | None = None
    error: str | None = None


# Limits shared by the wire options and the engine's TreeConfig, so validation and OpenAPI agree.
ChunkTokens = Annotated[int, msgspec.Meta(ge=32, le=32768)]
SummaryTokens = Annotated[int, msgspec.Meta(ge=8, le=4096)]
BatchSize = Annotated[int, msgspec.Meta(ge=1, le=256)]
BestOf = Annotated[int, msgspec.Meta(ge=1, le=16)]


class SummaryOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Options a submitter may set; the rest of TreeConfig keeps its defaults."""

    chunk_tokens: ChunkTokens | None = None
    summary_tokens: SummaryTokens | None = None
    batch_size: BatchSize | None = None
    context: ContextMode | None = None
    best_of: BestOf = 1


class SummaryCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    text: str
    title: str = ""
    options: SummaryOptions = msgspec.field(default_factory=SummaryOptions)
    callback_url: str | None = None


class JobAccepted(msgspec.Struct, kw_only=True):
    id: str
    url: str
    status: JobStatus
    notes: list[str] = []


class JobRead(msgspec.Struct, kw_only=True):
    id: str
    title: str
    status: JobStatus
    created: float
    started: float | None
    finished: float | None
    progress: list[HeightProgress]
    root: str | None = None
    summary: str | None = None
    error: str | None = None
    callbacks: list[CallbackAttempt] = []


class TreeRead(msgspec.Struct, kw_only=True):
    job_id: str
    document_id: str
    model: ModelInfo | None
    heights: list[list[str]]
    nodes: list[Node]
    root: str | None


class NodeRead(msgspec.Struct, kw_only=True):
    node: Node
    source: str | None = None


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str = ""
    instance: str = ""


# Job events: the engine's progress events plus the job's own lifecycle, one tagged union.
class JobState(msgspec.Struct, kw_only=True, tag="state"):
    job: JobRead


class NodeSummary(msgspec.Struct, kw_only=True, tag="node_done"):
    node_id: str
    height: int
    index: int
    summary: str


class JobFinished(msgspec.Struct, kw_only=True, tag="finished"):
    job: JobRead


JobEvent = JobState | HeightStarted | NodeSummary | HeightDone | JobFinished
EventKind = Literal["state", "height_started", "node_done", "height_done", "finished"]


# Helper reports about one node of a finished job (evidence, critique, qa, compare).
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


# Evaluations: comparison tasks for people, the comparisons they submit, and the export training reads.
EvaluationKind = Literal["summary", "critique"]  # two summaries of a node, or two critiques of it
Preference = Literal[0, 1, "tie"]
Confidence = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Rationale = Annotated[str, msgspec.Meta(max_length=4000)]
SideIndex = Annotated[int, msgspec.Meta(ge=0, le=1)]  # 0: the first candidate shown, 1: the second
ItemIndex = Annotated[int, msgspec.Meta(ge=0, le=10_000)]
ReportIds = Annotated[tuple[Annotated[str, msgspec.Meta(min_length=1, max_length=128)], ...],
                      msgspec.Meta(max_length=64)]


class TaskChild(msgspec.Struct, frozen=True, kw_only=True):
    """A child of a merge node, in reading order: what the candidates summarize."""

    id: str
    summary: str


class ReportLink(msgspec.Struct, frozen=True, kw_only=True):
    """A helper report an evaluator may open: POST `request` to `url` (the task's report door)."""

    label: str
    url: str
    request: ReportCreate


class TaskCandidate(msgspec.Struct, frozen=True, kw_only=True):
    """One side of a comparison task.

    `ref` names it within the node: "summary" (the chosen one), "candidate:<i>" (a best-of-n
    alternative) or "report:<id>" (a critique). Summary sides carry their sentences with evidence and
    unsupported flags; critique sides carry their items.
    """

    ref: str
    policy: str  # what wrote it: "chosen", a Candidate's source ("sample:2", "adapter:x"), a report id
    text: str
    sentences: tuple[Sentence, ...] = ()
    items: tuple[str, ...] = ()
    reward: float | None = None
    reports: tuple[ReportLink, ...] = ()


class EvaluationTask(msgspec.Struct, kw_only=True):
    """Two outputs for one node, leased to the caller until `leased_until` (epoch seconds).

    Submit the judgement with `POST /v1/comparisons` and `task` = `id` (the lease). A leaf shows its
    `source` text; a merge shows its `children`; critique tasks also show the `summary` critiqued.
    """

    id: str
    kind: EvaluationKind
    job_id: str
    node_id: str
    title: str
    height: int
    role: Role
    leased_until: float
    source: str | None = None
    children: tuple[TaskChild, ...] = ()
    summary: str | None = None
    candidates: tuple[TaskCandidate, TaskCandidate]
    reports: tuple[ReportLink, ...] = ()  # reports about both sides at once (compare)


class FlaggedItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An item the evaluator marked wrong: sentence `item` of a summary side, or item `item` of a critique."""

    candidate: SideIndex
    item: ItemIndex


class ComparisonCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An evaluator's judgement of a leased task. `preference` 0 / 1 is the first / second candidate.

    `reports_opened` are the ids of the helper reports the evaluator opened (the web page records them
    as they are opened); each must be a report about the task's node.
    """

    task: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    preference: Preference
    confidence: Confidence | None = None
    rationale: Rationale = ""
    reports_opened: ReportIds = ()
    flagged: Annotated[tuple[FlaggedItem, ...], msgspec.Meta(max_length=512)] = ()


class ComparisonRead(msgspec.Struct, kw_only=True):
    """A stored comparison, as its evaluator submitted it."""

    id: str
    task: str
    kind: EvaluationKind
    job_id: str
    node_id: str
    height: int
    evaluator: str
    preference: Preference
    confidence: float | None
    rationale: str
    reports_opened: tuple[str, ...]
    flagged: tuple[FlaggedItem, ...]
    created: float


class ComparisonRecord(msgspec.Struct, kw_only=True):
    """One line of `GET /v1/comparisons/export`: the training `Comparison` schema, field for field
    (training/datasets.py), so `recursum train` reads the export as it is."""

    task: str  # chunk | merge | helper:critique
    height: int | None
    input: str
    group: str
    id: str
    candidates: tuple[str, str]
    preferred: Preference
    confidence: float | None = None
    evaluator: str
    reports_seen: tuple[str, ...] = ()
    policies: tuple[str, str] | None = None
    created: datetime
