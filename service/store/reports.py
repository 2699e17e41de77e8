"""Helper reports in the store.

A report row is a `ReportRead` column for field. Its id is a content address, so creating one that
exists returns the stored one; workers lease pending reports oldest first and finish them.
"""

import time

import msgspec
import sqlalchemy as sa

from recursum.schemas.reports import ReportBody, ReportKind, ReportRead
from recursum.service.store.database import Database
from recursum.service.store.tables import ReportRow, row_struct


class ReportRepository:
    """Reports by content address; the worker finishes pending ones oldest first."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_report(self, report: ReportRead) -> tuple[ReportRead, bool]:
        """Store `report` unless its id exists; returns the stored report and whether it is new.
        KeyError if its job is gone."""
        insert = self.db.insert_unless_exists(ReportRow, msgspec.to_builtins(report))
        try:
            with self.db.session.begin() as session:
                created = session.execute(insert).rowcount > 0
        except sa.exc.IntegrityError:  # the job was deleted meanwhile
            raise KeyError(report.job_id) from None
        stored = self.get_report(report.id)
        if stored is None:
            raise KeyError(report.job_id)
        return stored, created

    def get_report(self, report_id: str) -> ReportRead | None:
        with self.db.session() as session:
            row = session.get(ReportRow, report_id)
            return None if row is None else row_struct(row, ReportRead)

    def reports_of_node(self, job_id: str, node_id: str,
                        kind: ReportKind | None = None) -> list[ReportRead]:
        """A node's reports, oldest first."""
        query = sa.select(ReportRow).where(ReportRow.job_id == job_id, ReportRow.node_id == node_id)
        if kind is not None:
            query = query.where(ReportRow.kind == kind)
        with self.db.session() as session:
            rows = session.scalars(query.order_by(ReportRow.created, ReportRow.id))
            return [row_struct(row, ReportRead) for row in rows]

    def count_pending(self) -> int:
        """Reports waiting for a worker, on every replica (a metric)."""
        with self.db.session() as session:
            query = sa.select(sa.func.count()).select_from(ReportRow).where(ReportRow.status == "pending")
            return session.scalar(query) or 0

    def claim_pending_reports(self, replica: str, limit: int, lease_seconds: float) -> list[ReportRead]:
        """Lease up to `limit` pending reports no live replica holds, oldest first, to `replica`."""
        candidates = (sa.select(ReportRow.id)
                      .where(ReportRow.status == "pending", self.db.lease_free(ReportRow))
                      .order_by(ReportRow.created, ReportRow.id).limit(limit))
        with self.db.session.begin() as session:
            ids = self.db.lease_rows(session, ReportRow, candidates, replica, lease_seconds)
            rows = session.scalars(sa.select(ReportRow).where(ReportRow.id.in_(ids))
                                   .order_by(ReportRow.created, ReportRow.id)) if ids else []
            return [row_struct(row, ReportRead) for row in rows]

    def finish_report(self, report_id: str, body: ReportBody | None = None, error: str | None = None) -> None:
        """Done with `body`, or failed with `error`; a report deleted meanwhile (with its job) is ignored."""
        values = {"status": "failed" if body is None else "done", "body": msgspec.to_builtins(body),
                  "error": error, "finished": time.time(), "lease_owner": None, "lease_expires": None}
        with self.db.session.begin() as session:
            session.execute(sa.update(ReportRow).where(ReportRow.id == report_id).values(values))

    def retry_report(self, report_id: str) -> ReportRead | None:
        """A failed report back to pending (asked for again); None if it is gone."""
        with self.db.session.begin() as session:
            failed = sa.and_(ReportRow.id == report_id, ReportRow.status == "failed")
            again = {"status": "pending", "error": None, "finished": None}
            session.execute(sa.update(ReportRow).where(failed).values(again))
        return self.get_report(report_id)
