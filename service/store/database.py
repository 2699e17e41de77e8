"""Where the service's database lives, how a connection to it is configured, and how it is migrated."""

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from filelock import FileLock
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from recursum.service.engine.models.model_store import recursum_home

MIGRATIONS = Path(__file__).with_name("migrations")
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
# Both supported dialects spell "insert unless the key exists" the same way, from their own module.
_DIALECT_INSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
# Any constant will do: it only has to be the same for every replica migrating the same database.
_MIGRATION_LOCK = 7_316_911


def default_database_url() -> str:
    """An embedded SQLite file in `$RECURSUM_HOME`: zero setup for one machine."""
    return f"sqlite:///{recursum_home() / 'recursum.db'}"


def create_database_engine(url: str) -> sa.Engine:
    """An engine for SQLite or PostgreSQL; SQLite connections get WAL, foreign keys and a busy timeout."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(f"unsupported database {url!r}: use a sqlite:/// or postgresql:// URL")
    if backend == "postgresql":
        if parsed.drivername == "postgresql":  # SQLAlchemy's default driver is psycopg2; we ship psycopg 3
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed)
    sa.event.listen(engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(dbapi_connection, _connection_record) -> None:
    # WAL lets readers (API threads) proceed while the worker writes; SQLite leaves foreign keys off
    # unless asked, and without a busy timeout a second writer fails at once instead of waiting. In WAL mode
    # synchronous=NORMAL survives a process crash and spares an fsync per committed node.
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=5000", "synchronous=NORMAL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def is_transient(error: BaseException) -> bool:
    """Whether a store error may pass if retried (SQLite busy, a PostgreSQL failover, a full disk): the
    job it interrupted is released and claimed again, not failed for good."""
    return isinstance(error, sa.exc.OperationalError) or (
        isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated)


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (`alembic upgrade head`); safe to run every start,
    by several processes at once."""
    database = sa.make_url(url).database
    if sa.make_url(url).get_backend_name() == "sqlite" and database and database != ":memory:":
        # Processes starting together on one file (a test run, `recursum serve` beside `recursum train`)
        # would race to create the same tables; PostgreSQL takes an advisory lock below instead.
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{Path(database).expanduser()}.migrate.lock"):
            _upgrade(url)
    else:
        _upgrade(url)


def _upgrade(url: str) -> None:
    engine = create_database_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Replicas starting together would otherwise race to create the same tables.
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()


class Database:
    """One migrated database shared by the store's repositories: its engine, sessions and dialect.

    Each repository call opens its own short session from the shared sessionmaker, so API threads and the
    worker thread can use one store at once.
    """

    def __init__(self, url: str) -> None:
        migrate(url)
        self.engine = create_database_engine(url)
        self.session: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def clock(self) -> sa.ColumnElement[float]:
        """Now, in epoch seconds, by the database's clock: every replica's leases are measured by this one
        clock, so a replica whose own clock runs ahead cannot take over leases that are still live."""
        if self.dialect == "postgresql":
            return sa.func.extract("epoch", sa.func.clock_timestamp())
        return (sa.func.julianday("now") - 2440587.5) * 86400.0

    def lease_free(self, row_type: Any) -> sa.ColumnElement[bool]:
        """Rows of `row_type` (with `lease_owner`, `lease_expires`) that no replica holds right now."""
        return sa.or_(row_type.lease_owner.is_(None), row_type.lease_expires < self.clock())

    def lease_rows(self, session: Session, row_type: Any, candidates: sa.Select, replica: str,
                   lease_seconds: float, **values: Any) -> list[str]:
        """Lease the rows whose ids `candidates` selects to `replica`, setting `values` too; their ids.

        One UPDATE ... WHERE id IN (SELECT ...) RETURNING: the write lock comes first, so SQLite writers
        queue on the busy timeout instead of failing to upgrade a read snapshot; on PostgreSQL `FOR UPDATE
        SKIP LOCKED` lets replicas lease at once without ever taking the same row.
        """
        if self.dialect == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True, of=row_type)
        lease = (sa.update(row_type).where(row_type.id.in_(candidates))
                 .values(lease_owner=replica, lease_expires=self.clock() + lease_seconds, **values)
                 .returning(row_type.id))
        return list(session.scalars(lease))

    def insert_unless_exists(self, row_type: type, values: dict[str, Any]) -> sa.Executable:
        """An INSERT that does nothing when the primary key exists: writers racing on one key all succeed."""
        return _DIALECT_INSERT[self.dialect](row_type).values(values).on_conflict_do_nothing()

    def insert_new(self, row_type: type, values: dict[str, Any]) -> None:
        """`insert_unless_exists`, in a transaction of its own."""
        with self.session.begin() as session:
            session.execute(self.insert_unless_exists(row_type, values))

    def close(self) -> None:
        """Release pooled connections (at shutdown)."""
        self.engine.dispose()
