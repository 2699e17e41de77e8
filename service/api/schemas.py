"""Wire schemas of the REST API: request bodies, responses and job events (msgspec)."""

from typing import Annotated, Literal

import msgspec

from service.engine.events import HeightDone, HeightStarted
from service.engine.tree import ContextMode, ModelInfo, Node
from service.store.records import CallbackAttempt, HeightProgress, JobStatus


class SummaryOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Options a submitter may set; the rest of TreeConfig keeps its defaults."""

    chunk_tokens: Annotated[int, msgspec.Meta(ge=32, le=32768)] | None = None
    summary_tokens: Annotated[int, msgspec.Meta(ge=8, le=4096)] | None = None
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=256)] | None = None
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
