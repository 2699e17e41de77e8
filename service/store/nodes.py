"""A job's finished nodes, and the generation cache every job (and every replica) shares.

`NodeRepository` implements the engine's `NodeCache`, which makes the generation cache a table.
"""

import time

import msgspec
import sqlalchemy as sa

from recursum.schemas.tree import Node
from recursum.service.engine.pipeline.results import GenerationResult
from recursum.service.store.database import Database
from recursum.service.store.tables import GenerationRow, JobGenerationRow, JobNodeRow, row_struct


class NodeRepository:
    """Finished nodes by job, and generations by content address (`get` / `put`: the `NodeCache`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # Finished nodes of a job

    def put_job_node(self, job_id: str, node: Node) -> None:
        """Store a finished node with the generations it was made from (what deleting the job may delete)."""
        row = {"job_id": job_id, "node_id": node.id, "height": node.height, "index": node.index,
               "node": msgspec.to_builtins(node)}
        with self.db.session.begin() as session:
            session.execute(self.db.insert_unless_exists(JobNodeRow, row))
            for key in node.generations:
                session.execute(self.db.insert_unless_exists(JobGenerationRow,
                                                             {"job_id": job_id, "key": key}))

    def job_nodes(self, job_id: str) -> list[Node]:
        """The job's finished nodes by height, then reading order."""
        query = (
            sa.select(JobNodeRow.node)
            .where(JobNodeRow.job_id == job_id)
            .order_by(JobNodeRow.height, JobNodeRow.index)
        )
        with self.db.session() as session:
            return [msgspec.convert(node, Node) for node in session.scalars(query)]

    def get_job_node(self, job_id: str, node_id: str) -> Node | None:
        with self.db.session() as session:
            row = session.get(JobNodeRow, (job_id, node_id))
            return None if row is None else msgspec.convert(row.node, Node)

    # NodeCache: generations by content address

    def get(self, key: str) -> GenerationResult | None:
        with self.db.session() as session:
            row = session.get(GenerationRow, key)
            return None if row is None else row_struct(row, GenerationResult)

    def put(self, result: GenerationResult) -> None:
        self.db.insert_new(GenerationRow, {**msgspec.to_builtins(result), "created": time.time()})
