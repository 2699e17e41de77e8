"""What the store keeps about a job, as msgspec structs the API and worker share."""

from typing import Literal

import msgspec

from service.engine.tree import TreeConfig

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled"})


class HeightProgress(msgspec.Struct, kw_only=True):
    height: int
    done: int
    total: int


class JobRecord(msgspec.Struct, kw_only=True):
    """A summary job. `owner` is the id of the API key that submitted it ("dev" in dev mode)."""

    id: str
    owner: str
    document_id: str
    title: str
    config: TreeConfig
    status: JobStatus = "queued"
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    callback_url: str | None = None
    progress: list[HeightProgress] = []
    root: str | None = None
    cancel_requested: bool = False


class CallbackAttempt(msgspec.Struct, kw_only=True):
    """One delivery attempt of a job's final event to its callback URL."""

    attempt: int
    at: float
    status_code: int | None = None
    error: str | None = None
