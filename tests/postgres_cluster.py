"""A throwaway PostgreSQL cluster on a Unix socket in a temp dir, for tests and benchmarks."""

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ClusterUnavailable(Exception):
    """Raised when this machine cannot run a PostgreSQL server; the message says what to install."""


def _bin_dir() -> Path | None:
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    pg_ctl = shutil.which("pg_ctl") or (installed[-1] if installed else None)
    return Path(pg_ctl).resolve().parent if pg_ctl else None


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:  # the server refuses to run as root
        pwd.getpwnam("postgres")
    except KeyError:
        raise ClusterUnavailable(
            "running as root and there is no 'postgres' user to run the server as") from None
    return ["runuser", "-u", "postgres", "--"]


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Yields a URL with `{}` where the database name goes; the cluster is removed afterwards."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ClusterUnavailable("the PostgreSQL driver is missing: pip install 'psycopg[binary]'") from None
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise ClusterUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    as_user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="recursum-pg-"))
    if as_user:
        shutil.chown(root, "postgres")
    data = root / "data"
    pg_ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data)]
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True, capture_output=True,
    )
    options = f"-k {root} -c listen_addresses='' -F"
    subprocess.run([*pg_ctl, "-l", str(root / "log"), "-w", "-o", options, "start"], check=True,
                   capture_output=True)
    try:
        yield f"postgresql://postgres@/{{}}?host={root}"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def new_database(server: str) -> str:
    """A fresh, empty database on the cluster; returns its URL."""
    import sqlalchemy as sa

    from recursum.service.store.database import create_database_engine

    name = f"test_{uuid.uuid4().hex}"
    admin = create_database_engine(server.format("postgres"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.format(name)
