"""The callback outbox: a job's callback is a row written with the job, leased by one replica at a time
once the job ends, with every attempt recorded; so a restart or a dead replica loses no callback, and no
two replicas send the same one."""

import time

import msgspec
import sqlalchemy as sa

from recursum.schemas.jobs import FINISHED, CallbackAttempt
from recursum.service.store.database import Database
from recursum.service.store.tables import CallbackAttemptRow, CallbackDeliveryRow, JobRow, row_struct


class CallbackDelivery(msgspec.Struct, kw_only=True):
    """A pending callback as its deliverer sees it; `id` is the `webhook-id` header of every attempt."""

    id: str
    job_id: str
    url: str
    owner: str
    body: str | None
    attempts: int


class CallbackRepository:
    """Deliveries and their attempts."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def claim_due(self, replica: str, limit: int, lease_seconds: float) -> list[CallbackDelivery]:
        """Lease up to `limit` pending deliveries whose job has ended and whose retry time has come."""
        if limit <= 0:
            return []
        Delivery = CallbackDeliveryRow  # noqa: N806 (a table alias, read like the class)
        candidates = (
            sa.select(Delivery.id).join(JobRow, JobRow.id == Delivery.job_id)
            .where(Delivery.status == "pending", Delivery.next_attempt <= time.time(),
                   JobRow.status.in_(FINISHED), self.db.lease_free(Delivery))
            .order_by(Delivery.next_attempt).limit(limit)
        )
        with self.db.session.begin() as session:
            ids = self.db.lease_rows(session, Delivery, candidates, replica, lease_seconds)
            rows = session.scalars(sa.select(Delivery).where(Delivery.id.in_(ids))) if ids else []
            return [row_struct(row, CallbackDelivery) for row in rows]

    def set_body(self, delivery_id: str, body: str) -> None:
        """Fix the body at the first attempt, so every retry sends (and signs) the same bytes."""
        with self.db.session.begin() as session:
            session.execute(sa.update(CallbackDeliveryRow).where(CallbackDeliveryRow.id == delivery_id)
                            .values(body=body))

    def record_attempt(self, delivery: CallbackDelivery, replica: str, attempt: CallbackAttempt,
                       retry_at: float | None) -> bool:
        """Record an attempt and what comes next: done when delivered, a retry at `retry_at`, else failed.
        False when the job was deleted meanwhile or another replica holds the delivery now."""
        status = "delivered" if attempt.outcome == "delivered" else "pending" if retry_at else "failed"
        held = sa.and_(CallbackDeliveryRow.id == delivery.id, CallbackDeliveryRow.lease_owner == replica)
        with self.db.session.begin() as session:
            updated = session.execute(sa.update(CallbackDeliveryRow).where(held).values(
                status=status, attempts=attempt.attempt, next_attempt=retry_at or attempt.at,
                lease_owner=None, lease_expires=None))
            if updated.rowcount == 0:
                return False
            session.add(CallbackAttemptRow(job_id=delivery.job_id, **msgspec.to_builtins(attempt)))
            return True

    def attempts(self, job_id: str) -> list[CallbackAttempt]:
        """Every delivery attempt for the job's callback, in order (shown on the job)."""
        query = sa.select(CallbackAttemptRow).where(CallbackAttemptRow.job_id == job_id)
        with self.db.session() as session:
            rows = session.scalars(query.order_by(CallbackAttemptRow.attempt))
            return [row_struct(row, CallbackAttempt) for row in rows]
