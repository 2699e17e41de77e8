"""Wire schemas: every struct that crosses the HTTP boundary, shared by the service and the client.

`clients` imports neither `service` nor `training`; the service imports these definitions, so
server and client encode and decode exactly the same types. The summary-tree structs live here for
that reason: a node travels over the wire as it is stored.
"""

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


class SummaryOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Options a submitter may set; the rest of TreeConfig keeps its defaults."""

    chunk_tokens: ChunkTokens | None = None
    summary_tokens: SummaryTokens | None = None
    batch_size: BatchSize | None = None
    context: ContextMode | None = None
    best_of: Annotated[int, msgspec.Meta(ge=1, le=16)] = 1


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
