"""Job events: the engine's progress events plus the job's own lifecycle, one tagged union."""

from typing import Literal

import msgspec

from recursum.schemas.jobs import JobRead


class HeightStarted(msgspec.Struct, frozen=True, kw_only=True, tag="height_started"):
    height: int
    nodes: int
    cached: int


class HeightDone(msgspec.Struct, frozen=True, kw_only=True, tag="height_done"):
    height: int
    nodes: int


class JobState(msgspec.Struct, kw_only=True, tag="state"):
    job: JobRead


class NodeSummary(msgspec.Struct, kw_only=True, tag="node_done"):
    node_id: str
    height: int
    index: int
    summary: str
    eta_seconds: float | None = None  # the job's time left, updated as each node finishes


class JobFinished(msgspec.Struct, kw_only=True, tag="finished"):
    job: JobRead


JobEvent = JobState | HeightStarted | NodeSummary | HeightDone | JobFinished
EventKind = Literal["state", "height_started", "node_done", "height_done", "finished"]
