"""What the store keeps about a job, as msgspec structs the API and worker share."""


import msgspec

from recursum.schemas.jobs import HeightProgress, JobStatus
from recursum.service.engine.pipeline.tree import TreeConfig


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
    attempts: int = 0  # claims by a worker; more than the service's limit marks a poison job
    work_tokens: int = 0  # the estimated prompt and generated tokens, counted against the owner's budget
    evaluation: bool = False  # offered to evaluators: their tasks and reports read its source text
    estimated_nodes: int = 0  # the tree's nodes by its shape (exact): the ETA's total
    bundle: str | None = None  # the adapter set it runs on, from its first start (the version)


