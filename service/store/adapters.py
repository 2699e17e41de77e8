"""Adapter activations in the store: an append-only log whose latest row is the bundle every replica serves.

A log rather than one mutable row, so the bundle before the served one (the rollback target) and who
switched when stay on record.
"""

import time

import sqlalchemy as sa

from recursum.schemas.adapters import BundleRead
from recursum.service.store.database import Database
from recursum.service.store.tables import AdapterActivationRow, row_struct


class AdapterRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def activate(self, directory: str | None, version: str, by: str) -> BundleRead:
        """Make the bundle at `directory` (None: the bare model) the served one."""
        with self.db.session.begin() as session:
            row = AdapterActivationRow(directory=directory, version=version, activated=time.time(),
                                       activated_by=by)
            session.add(row)
            session.flush()
            return row_struct(row, BundleRead)

    def latest(self, count: int = 2) -> list[BundleRead]:
        """The newest `count` activations, newest first: the served bundle, then the one before it."""
        query = sa.select(AdapterActivationRow).order_by(AdapterActivationRow.id.desc()).limit(count)
        with self.db.session() as session:
            return [row_struct(row, BundleRead) for row in session.scalars(query)]

    def served(self) -> BundleRead | None:
        """The latest activation, or None while nothing was ever activated (replicas serve their config)."""
        return next(iter(self.latest(1)), None)

    def of_version(self, version: str) -> BundleRead | None:
        """The newest activation of `version`: where a job that started on it finds its bundle again."""
        query = (sa.select(AdapterActivationRow).where(AdapterActivationRow.version == version)
                 .order_by(AdapterActivationRow.id.desc()).limit(1))
        with self.db.session() as session:
            row = session.scalars(query).first()
            return None if row is None else row_struct(row, BundleRead)
