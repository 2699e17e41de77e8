"""`recursum client ...`: summarize with a remote service. Client errors become one line on stderr, exit 1."""

from pathlib import Path

import click
import msgspec

from recursum.clients.cli_errors import one_line_errors
from recursum.clients.client import Client
from recursum.clients.exceptions import RecursumClientError
from recursum.clients.options import InvalidOptions, summary_option_flags, summary_options
from recursum.clients.progress import HeightBars


def _connection(command):
    command = click.option("--api-key", envvar="RECURSUM_API_KEY", default=None,
                           help="Sent as `Authorization: Bearer` (env RECURSUM_API_KEY).")(command)
    return click.option("--server", envvar="RECURSUM_SERVER", required=True, metavar="URL",
                        help="Base URL of the service (env RECURSUM_SERVER).")(command)


def _echo_json(value: msgspec.Struct) -> None:
    click.echo(msgspec.json.format(msgspec.json.encode(value)).decode())


@click.group(cls=one_line_errors(RecursumClientError, InvalidOptions))
def client() -> None:
    """Use a remote recursum service."""


@client.command()
@click.argument("book", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_connection
@click.option("--title", default="", help="Document title (default: the file name).")
@summary_option_flags()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the whole tree (JSON) here.")
@click.option("--no-wait", is_flag=True, help="Print the job id and return at once.")
def summarize(book: Path, server: str, api_key: str | None, title: str, out: Path | None, no_wait: bool,
              **flags) -> None:
    """Upload BOOK, follow its progress, and print the root summary (unset options: the server's defaults)."""
    if no_wait and out is not None:
        raise click.UsageError("--out needs the finished tree; drop --no-wait")
    options = summary_options(flags)
    with Client(server, api_key) as remote:
        accepted = remote.submit_file(book, title=title, options=options)
        for note in accepted.notes:
            click.echo(f"recursum: note: {note}", err=True)
        if no_wait:
            click.echo(accepted.id)
            return
        with HeightBars() as bars:
            job = remote.wait(accepted.id, on_event=bars.update)
        if out is not None:
            out.write_bytes(msgspec.json.encode(remote.tree(job.id)))
    click.echo(job.summary or "")


@client.command()
@click.argument("book", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_connection
@click.option("--title", default="", help="Document title (default: the file name).")
@summary_option_flags()
def estimate(book: Path, server: str, api_key: str | None, title: str, **flags) -> None:
    """Print what summarizing BOOK would cost (JSON: chunks, nodes per height, tokens, seconds at the
    server's recent throughput), without queueing it."""
    with Client(server, api_key) as remote:
        _echo_json(remote.estimate_file(book, title=title, options=summary_options(flags)))


@client.command()
@click.argument("job_id", metavar="ID")
@_connection
def get(job_id: str, server: str, api_key: str | None) -> None:
    """Print the job's state (JSON)."""
    with Client(server, api_key) as remote:
        _echo_json(remote.get(job_id))


@client.command()
@click.argument("job_id", metavar="ID")
@_connection
def tree(job_id: str, server: str, api_key: str | None) -> None:
    """Print the job's summary tree (JSON)."""
    with Client(server, api_key) as remote:
        _echo_json(remote.tree(job_id))


@client.command()
@click.argument("job_id", metavar="ID")
@_connection
def cancel(job_id: str, server: str, api_key: str | None) -> None:
    """Cancel or delete a job; prints `cancelled`, `cancelling` or `deleted`."""
    with Client(server, api_key) as remote:
        click.echo(remote.cancel(job_id))


@client.command()
@_connection
@click.option("--activate", "directory", default=None, metavar="DIR",
              help="Serve this bundle (a directory on the server; none: the bare model) on every replica.")
@click.option("--rollback", is_flag=True, help="Serve the bundle served before the current one again.")
def adapters(server: str, api_key: str | None, directory: str | None, rollback: bool) -> None:
    """Print the served adapter bundle and the one before it (JSON); switch with --activate or --rollback
    (an admin key)."""
    if directory is not None and rollback:
        raise click.UsageError("--activate and --rollback exclude each other")
    with Client(server, api_key) as remote:
        if rollback:
            _echo_json(remote.rollback_adapters())
        elif directory is not None:
            _echo_json(remote.activate_adapters(None if directory == "none" else directory))
        else:
            _echo_json(remote.adapters())
