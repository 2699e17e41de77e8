"""`Store`: the service's one door to its database, one repository per aggregate over a shared `Database`.

Structs in, structs out, one short transaction a call. `jobs` holds documents, jobs and leases;
`callbacks` the callback outbox and its attempts; `nodes` a job's finished nodes and the shared generation
cache (the engine's `NodeCache`); `reports` helper reports; `evaluations` comparison tasks, leases and
comparisons; `adapters` the log of activated adapter bundles.
"""

import sqlalchemy as sa

from recursum.service.store.adapters import AdapterRepository
from recursum.service.store.callbacks import CallbackRepository
from recursum.service.store.database import Database
from recursum.service.store.evaluations import EvaluationRepository
from recursum.service.store.jobs import JobRepository
from recursum.service.store.nodes import NodeRepository
from recursum.service.store.reports import ReportRepository
from recursum.service.store.tables import Base


class Store:
    """The repositories of one database."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.jobs = JobRepository(self.db)
        self.callbacks = CallbackRepository(self.db)
        self.nodes = NodeRepository(self.db)
        self.reports = ReportRepository(self.db)
        self.evaluations = EvaluationRepository(self.db)
        self.adapters = AdapterRepository(self.db)

    def close(self) -> None:
        """Release pooled connections (at shutdown)."""
        self.db.close()

    def counts(self) -> dict[str, int]:
        """Rows per table, e.g. to check that a refused request left the store unchanged."""
        with self.db.session() as session:
            return {
                table.name: session.scalar(sa.select(sa.func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
            }
