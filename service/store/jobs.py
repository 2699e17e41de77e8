"""Jobs and the documents they summarize: submission, leases across replicas, progress."""

import time
import uuid
from collections.abc import Iterable
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.orm import Session

from recursum.service.engine.pipeline.document import Document
from recursum.service.store.database import Database
from recursum.service.store.records import JobRecord
from recursum.service.store.tables import (
    CallbackDeliveryRow,
    ComparisonRow,
    DocumentRow,
    GenerationRow,
    JobGenerationRow,
    JobRow,
    row_struct,
)

UNFINISHED: tuple[str, ...] = ("queued", "running")
_SETTABLE_JOB_FIELDS = frozenset(JobRecord.__struct_fields__) - {"id"}


_SUBMIT_LOCK = 7_316_912  # any constant: the same for every replica submitting to one database


class OverLimit(Exception):
    """Raised by `submit` when a limit is reached; `kind` says which: queue, jobs or tokens."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class SubmitLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_queue: int
    max_jobs_per_key: int
    max_key_tokens: int

    def check(self, unfinished: int, owner_jobs: int, owner_tokens: int, new_tokens: int) -> None:
        if unfinished >= self.max_queue:
            raise OverLimit("queue", f"{self.max_queue} jobs are already waiting; retry later")
        if owner_jobs >= self.max_jobs_per_key:
            raise OverLimit("jobs", f"this API key has {owner_jobs} jobs queued or running, its limit is "
                                    f"{self.max_jobs_per_key}; retry when one ends")
        if owner_tokens + new_tokens > self.max_key_tokens:
            raise OverLimit("tokens", f"this API key's unfinished jobs already hold {owner_tokens:,} of its "
                                      f"{self.max_key_tokens:,} tokens; retry when one ends")


class LeaseLost(Exception):
    """Raised when a replica writes to a job whose lease another replica now holds."""


class JobRepository:
    """Documents, jobs and their callback attempts."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # Documents

    def put_document(self, document: Document) -> None:
        self.db.insert_new(DocumentRow, {**msgspec.to_builtins(document), "created": time.time()})

    def get_document(self, document_id: str) -> Document | None:
        with self.db.session() as session:
            row = session.get(DocumentRow, document_id)
            return None if row is None else row_struct(row, Document)

    # Jobs

    def create_job(self, job: JobRecord) -> None:
        """Store a job, with its callback in the outbox in the same transaction: no job ends without it."""
        with self.db.session.begin() as session:
            _add_job(session, job)

    def submit(self, document: Document, job: JobRecord, limits: SubmitLimits) -> None:
        """Store the document and the job in one transaction, within `limits` counted inside it (else
        `OverLimit`, and nothing is stored). Submissions are serialized while they count, by an advisory
        lock on PostgreSQL and by the write lock the first insert takes on SQLite, so concurrent ones
        cannot all take the last place. Tried twice: on PostgreSQL a concurrent DELETE of the last job on
        the same document can remove the document between its insert and the job's."""
        for attempt in range(2):
            try:
                with self.db.session.begin() as session:
                    if self.db.dialect == "postgresql":
                        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SUBMIT_LOCK})
                    session.execute(self.db.insert_unless_exists(
                        DocumentRow, {**msgspec.to_builtins(document), "created": time.time()}))
                    limits.check(_unfinished(session), *_owner_load(session, job.owner), job.work_tokens)
                    _add_job(session, job)
                return
            except sa.exc.IntegrityError:
                if attempt:
                    raise

    def get_job(self, job_id: str) -> JobRecord | None:
        with self.db.session() as session:
            row = session.get(JobRow, job_id)
            return None if row is None else row_struct(row, JobRecord)

    def list_jobs(self, owner: str | None = None, limit: int = 100) -> list[JobRecord]:
        """Newest first; `owner=None` lists every owner's jobs."""
        query = sa.select(JobRow).order_by(JobRow.created.desc(), JobRow.id.desc()).limit(limit)
        if owner is not None:
            query = query.where(JobRow.owner == owner)
        return self._jobs(query)

    def claim_jobs(self, replica: str, limit: int, lease_seconds: float,
                   exclude: Iterable[str] = ()) -> list[JobRecord]:
        """Lease up to `limit` unfinished jobs, oldest first, that no live replica holds; each claim counts
        as an attempt (a replica killed while running a job never says so). SQLite serializes writers on
        one file and serves a single replica; PostgreSQL serves many."""
        if limit <= 0:
            return []
        candidates = (
            sa.select(JobRow.id)
            .where(JobRow.status.in_(UNFINISHED), JobRow.id.not_in(list(exclude)))
            .where(sa.or_(self.db.lease_free(JobRow), JobRow.lease_owner == replica))
            .order_by(JobRow.created, JobRow.id)
            .limit(limit)
        )
        with self.db.session.begin() as session:
            ids = self.db.lease_rows(session, JobRow, candidates, replica, lease_seconds,
                                     attempts=JobRow.attempts + 1)
            if not ids:
                return []
            rows = session.scalars(sa.select(JobRow).where(JobRow.id.in_(ids))
                                   .order_by(JobRow.created, JobRow.id))
            return [row_struct(row, JobRecord) for row in rows]

    def renew_leases(self, replica: str, job_ids: Iterable[str], lease_seconds: float) -> dict[str, bool]:
        """Extend this replica's leases; returns {job id: cancel requested} for the jobs still held."""
        ids = list(job_ids)
        if not ids:
            return {}
        held = sa.and_(JobRow.id.in_(ids), JobRow.lease_owner == replica)
        with self.db.session.begin() as session:
            renewed = self.db.clock() + lease_seconds
            session.execute(sa.update(JobRow).where(held).values(lease_expires=renewed))
            return dict(session.execute(sa.select(JobRow.id, JobRow.cancel_requested).where(held)).all())

    def release_jobs(self, replica: str, job_ids: Iterable[str]) -> None:
        """Give up this replica's leases without counting the attempt (a graceful stop, a database error):
        any replica may claim the jobs again at once."""
        ids = list(job_ids)
        if not ids:
            return
        held = sa.and_(JobRow.id.in_(ids), JobRow.lease_owner == replica)
        with self.db.session.begin() as session:
            refunded = sa.case((JobRow.attempts > 0, JobRow.attempts - 1), else_=0)
            session.execute(sa.update(JobRow).where(held).values(lease_owner=None, lease_expires=None,
                                                                 attempts=refunded))

    def _jobs(self, query: sa.Select[tuple[JobRow]]) -> list[JobRecord]:
        with self.db.session() as session:
            return [row_struct(row, JobRecord) for row in session.scalars(query)]

    def owner_load(self, owner: str) -> tuple[int, int]:
        """The owner's unfinished jobs: how many, and their estimated work in tokens."""
        with self.db.session() as session:
            return _owner_load(session, owner)

    def count_jobs(self, statuses: Iterable[str]) -> int:
        query = sa.select(sa.func.count()).select_from(JobRow).where(JobRow.status.in_(list(statuses)))
        with self.db.session() as session:
            return session.scalar(query) or 0

    def update_job(self, job_id: str, *, holder: str | None = None, **changes: Any) -> JobRecord:
        """Set JobRecord fields and return the updated record; KeyError if there is no such job.

        With `holder`, only while that replica holds the job's lease (else `LeaseLost`), so a
        replica that lost a job can never overwrite what its new holder reports.
        """
        if not changes or changes.keys() - _SETTABLE_JOB_FIELDS:
            raise TypeError(
                f"update_job() sets JobRecord fields other than id, got {sorted(changes)}; "
                f"choose from {sorted(_SETTABLE_JOB_FIELDS)}"
            )
        values = {name: msgspec.to_builtins(value) for name, value in changes.items()}
        with self.db.session.begin() as session:
            # Writing before reading takes SQLite's write lock first, so concurrent writers wait on the busy
            # timeout instead of one failing to upgrade a stale read snapshot.
            target = JobRow.id == job_id
            if holder is not None:
                target = sa.and_(target, JobRow.lease_owner == holder)
            updated = session.execute(sa.update(JobRow).where(target).values(values))
            if updated.rowcount == 0:
                if holder is not None and session.get(JobRow, job_id) is not None:
                    raise LeaseLost(job_id)
                raise KeyError(job_id)
            # Converting inside the transaction rolls back a change that makes the record invalid.
            return row_struct(session.get_one(JobRow, job_id), JobRecord)

    def cancel_unclaimed(self, job_id: str, now: float) -> bool:
        """Cancel a queued job at once if no live replica holds it; False leaves it to its worker."""
        unclaimed = sa.and_(JobRow.id == job_id, JobRow.status == "queued", self.db.lease_free(JobRow))
        with self.db.session.begin() as session:
            updated = session.execute(sa.update(JobRow).where(unclaimed)
                                      .values(status="cancelled", finished=now, cancel_requested=True))
            return updated.rowcount > 0

    def delete_job(self, job_id: str, keep_comparisons: bool = True) -> bool:
        """Delete a job with its nodes, reports and callbacks, and its document and cached generations
        unless another job uses them; its comparisons' copies stay as training data if `keep_comparisons`."""
        with self.db.session.begin() as session:
            document_id = session.scalar(sa.select(JobRow.document_id).where(JobRow.id == job_id))
            if document_id is None:
                return False
            owned = sa.select(JobGenerationRow.key).where(JobGenerationRow.job_id == job_id)
            used_elsewhere = sa.select(JobGenerationRow.key).where(JobGenerationRow.job_id != job_id)
            session.execute(sa.delete(GenerationRow).where(GenerationRow.key.in_(owned),
                                                           GenerationRow.key.not_in(used_elsewhere)))
            session.execute(sa.delete(JobRow).where(JobRow.id == job_id))  # cascades to what the job owns
            unused = ~sa.exists().where(JobRow.document_id == document_id)
            session.execute(sa.delete(DocumentRow).where(DocumentRow.id == document_id, unused))
            if not keep_comparisons:
                session.execute(sa.delete(ComparisonRow).where(ComparisonRow.job_id == job_id))
            return True


def _add_job(session: Session, job: JobRecord) -> None:
    session.add(JobRow(**msgspec.to_builtins(job)))
    if job.callback_url is not None:
        session.flush()  # the job row first: the delivery's foreign key needs it
        session.add(CallbackDeliveryRow(id=f"msg_{uuid.uuid4().hex}", job_id=job.id, url=job.callback_url,
                                        owner=job.owner, status="pending", attempts=0,
                                        next_attempt=job.created))


def _unfinished(session: Session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(JobRow)
                          .where(JobRow.status.in_(UNFINISHED))) or 0


def _owner_load(session: Session, owner: str) -> tuple[int, int]:
    query = (sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(JobRow.work_tokens), 0))
             .where(JobRow.owner == owner, JobRow.status.in_(UNFINISHED)))
    jobs, tokens = session.execute(query).one()
    return int(jobs), int(tokens)
