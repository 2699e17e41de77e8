"""The database schema as SQLAlchemy models; the migrations under `migrations/` must build exactly this.

Structs that only the service reads back whole (a job's config and progress, a finished node) are kept
as JSON, so adding a field to them needs no migration.
"""

from typing import Any, TypeVar

import msgspec
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    # Times are epoch seconds: double precision keeps the microseconds (SQLAlchemy 2.0 would map to Float).
    type_annotation_map = {float: sa.Double}


class DocumentRow(Base):
    """A normalized document; shared by every job that summarizes the same text."""

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    title: Mapped[str] = mapped_column(sa.Text)
    text: Mapped[str] = mapped_column(sa.Text)
    created: Mapped[float]


class JobRow(Base):
    """One `JobRecord`, column for field."""

    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index("ix_jobs_owner_created", "owner", "created"),
        sa.Index("ix_jobs_status", "status"),
    )

    id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String)
    document_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("documents.id"))
    title: Mapped[str] = mapped_column(sa.Text)
    config: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(16))
    created: Mapped[float]
    started: Mapped[float | None]
    finished: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    callback_url: Mapped[str | None] = mapped_column(sa.Text)
    progress: Mapped[list[Any]] = mapped_column(sa.JSON)
    root: Mapped[str | None] = mapped_column(sa.String)
    cancel_requested: Mapped[bool]
    attempts: Mapped[int] = mapped_column(server_default="0")
    work_tokens: Mapped[int] = mapped_column(server_default="0")
    evaluation: Mapped[bool] = mapped_column(server_default=sa.false())
    estimated_nodes: Mapped[int] = mapped_column(server_default="0")
    bundle: Mapped[str | None] = mapped_column(sa.String(16))
    # Not part of JobRecord: only the claiming machinery reads them.
    lease_owner: Mapped[str | None] = mapped_column(sa.String)
    lease_expires: Mapped[float | None]


class JobNodeRow(Base):
    """A finished node of a job, written as soon as it exists so a restarted worker can resume."""

    __tablename__ = "job_nodes"

    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    node_id: Mapped[str] = mapped_column(sa.String, primary_key=True)
    height: Mapped[int]
    index: Mapped[int]
    node: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class JobGenerationRow(Base):
    """A cached generation one of a job's nodes was made from: what deleting the job may delete with it."""

    __tablename__ = "job_generations"
    __table_args__ = (sa.Index("ix_job_generations_key", "key"),)

    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String, primary_key=True)


class GenerationRow(Base):
    """A `GenerationResult` by content address: the node cache every job shares."""

    __tablename__ = "generations"

    key: Mapped[str] = mapped_column(sa.String, primary_key=True)
    text: Mapped[str] = mapped_column(sa.Text)
    prompt_tokens: Mapped[int]
    generated_tokens: Mapped[int]
    truncated: Mapped[bool]
    created: Mapped[float]


class CallbackAttemptRow(Base):
    """One delivery attempt of a job's final event to its callback URL."""

    __tablename__ = "callback_attempts"

    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[float]
    outcome: Mapped[str] = mapped_column(sa.String(16), server_default="rejected")


class CallbackDeliveryRow(Base):
    """A job's callback in the outbox: written with the job, due once the job ends, leased by the replica
    delivering it. `id` is the `webhook-id` every attempt carries, so a receiver can drop repeats."""

    __tablename__ = "callback_deliveries"
    __table_args__ = (sa.Index("ix_callback_deliveries_status", "status", "next_attempt"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    url: Mapped[str] = mapped_column(sa.Text)
    owner: Mapped[str] = mapped_column(sa.String)
    body: Mapped[str | None] = mapped_column(sa.Text)  # the finished event, fixed at the first attempt
    status: Mapped[str] = mapped_column(sa.String(16))  # pending | delivered | failed
    attempts: Mapped[int]
    next_attempt: Mapped[float]
    lease_owner: Mapped[str | None] = mapped_column(sa.String)
    lease_expires: Mapped[float | None]


class ReportRow(Base):
    """A helper report about one node of a job; `id` is a content address, so asking twice reuses it."""

    __tablename__ = "reports"
    __table_args__ = (sa.Index("ix_reports_job_node", "job_id", "node_id"),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(sa.String)
    kind: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16))  # pending | done | failed
    request: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    body: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created: Mapped[float]
    finished: Mapped[float | None]
    # Not part of ReportRead: only the replica generating a pending report holds it.
    lease_owner: Mapped[str | None] = mapped_column(sa.String)
    lease_expires: Mapped[float | None]


class EvaluationTaskRow(Base):
    """A pair of outputs for one node that people compare; `lease_*` says who holds it right now.

    `id` is a content address of (job, node, kind, first, second), so a pair is one row however often
    it is offered. `first`/`second` are refs: "summary", "candidate:<i>" or "report:<id>".
    """

    __tablename__ = "evaluation_tasks"
    __table_args__ = (sa.Index("ix_evaluation_tasks_lease_owner", "lease_owner"),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(sa.String)
    kind: Mapped[str] = mapped_column(sa.String(16))  # summary | critique
    height: Mapped[int]
    first: Mapped[str] = mapped_column(sa.String)
    second: Mapped[str] = mapped_column(sa.String)
    created: Mapped[float]
    lease_id: Mapped[str | None] = mapped_column(sa.String(32))
    lease_owner: Mapped[str | None] = mapped_column(sa.String)
    lease_expires: Mapped[float | None]
    # A gold item: the planted summary shown as `second`'s candidate (never said to the evaluator).
    gold: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)


class EvaluationLeaseRow(Base):
    """One lease of a task to an evaluator: the id a comparison is submitted against."""

    __tablename__ = "evaluation_leases"
    __table_args__ = (sa.Index("ix_evaluation_leases_evaluator", "evaluator"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    task_id: Mapped[str] = mapped_column(sa.ForeignKey("evaluation_tasks.id", ondelete="CASCADE"))
    evaluator: Mapped[str] = mapped_column(sa.String)
    leased: Mapped[float]
    expires: Mapped[float]
    submitted: Mapped[float | None]


class ComparisonRow(Base):
    """An evaluator's judgement of one task, with copies of what was judged.

    No foreign keys on purpose: the texts, the prompt input and the document id are copied in, so a
    comparison stays exportable training data after its job is deleted. `lease_id` is unique: one
    answer per lease.
    """

    __tablename__ = "comparisons"
    __table_args__ = (
        sa.Index("ix_comparisons_created", "created"),
        sa.Index("ix_comparisons_evaluator_task", "evaluator", "task_id"),
        sa.Index("ux_comparisons_seq", "seq", unique=True),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    lease_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    task_id: Mapped[str] = mapped_column(sa.String(64))
    job_id: Mapped[str] = mapped_column(sa.String)
    node_id: Mapped[str] = mapped_column(sa.String)
    document_id: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(16))
    height: Mapped[int]
    input: Mapped[str] = mapped_column(sa.Text)
    refs: Mapped[list[Any]] = mapped_column(sa.JSON)
    candidates: Mapped[list[Any]] = mapped_column(sa.JSON)
    policies: Mapped[list[Any]] = mapped_column(sa.JSON)
    preference: Mapped[str] = mapped_column(sa.String(8))  # "0" | "1" | "tie"
    confidence: Mapped[float | None]
    rationale: Mapped[str] = mapped_column(sa.Text)
    reports_opened: Mapped[list[Any]] = mapped_column(sa.JSON)
    flagged: Mapped[list[Any]] = mapped_column(sa.JSON)
    evaluator: Mapped[str] = mapped_column(sa.String)
    created: Mapped[float]
    seq: Mapped[int]  # the order comparisons were stored in: the export's cursor
    gold_correct: Mapped[bool | None]  # a gold item's: whether the original was preferred (None: no gold)


class AdapterActivationRow(Base):
    """An adapter bundle made active: the latest row is what every replica serves."""

    __tablename__ = "adapter_activations"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    directory: Mapped[str | None] = mapped_column(sa.Text)
    version: Mapped[str] = mapped_column(sa.String(16))
    activated: Mapped[float]
    activated_by: Mapped[str] = mapped_column(sa.String)


StructT = TypeVar("StructT", bound=msgspec.Struct)


def row_struct(row: Any, struct_type: type[StructT]) -> StructT:
    """Read a struct back from the columns named like its fields (validated, so bad rows fail loudly)."""
    return msgspec.convert({name: getattr(row, name) for name in struct_type.__struct_fields__}, struct_type)
