"""Summary jobs on the wire: submission, acceptance, state, and the finished tree."""

from typing import Annotated, Literal

import msgspec

from recursum.schemas.options import SummaryOptions
from recursum.schemas.tree import ModelInfo, Node

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled"})


class HeightProgress(msgspec.Struct, kw_only=True):
    height: int
    done: int
    total: int


# delivered: a 2xx; rejected: another status; unreachable: no answer within the deadline; refused: the
# address or port is not allowed; unsigned: the submitting key is gone, so nothing was sent. Coarse on
# purpose: status codes and connection errors would let a submitter probe the receiver's network.
CallbackOutcome = Literal["delivered", "rejected", "unreachable", "refused", "unsigned"]


class CallbackAttempt(msgspec.Struct, kw_only=True):
    """One delivery attempt of a job's final event to its callback URL."""

    attempt: int
    at: float
    outcome: CallbackOutcome


Title = Annotated[str, msgspec.Meta(max_length=512)]
CallbackUrl = Annotated[str, msgspec.Meta(max_length=2048)]


class SummaryCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    text: str
    title: Title = ""
    options: SummaryOptions = msgspec.field(default_factory=SummaryOptions)
    callback_url: CallbackUrl | None = None


ThroughputBasis = Literal["measured", "probe", "none"]


class EstimateRead(msgspec.Struct, kw_only=True):
    """What a document would cost, answered without queueing it. `chunks` and `nodes` are exact (the tree's
    shape follows from the chunks); tokens take summaries at the mean length this replica measured (full
    length before it has measured any)."""

    chunks: int
    nodes: list[int]  # nodes per height, leaves first, the root last
    prompt_tokens: int
    generated_tokens: int
    seconds: float | None  # at this replica's recent throughput; None before it has one
    basis: ThroughputBasis  # where that throughput comes from


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
    eta_seconds: float | None = None  # while running: the time left at the job's pace so far
    bundle: str | None = None  # the adapter bundle version it runs on, from its start (/v1/admin/adapters)


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
