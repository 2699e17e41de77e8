"""The `recursum` console script. User errors become one line on stderr and exit code 1."""

import sys
from pathlib import Path

import click
import msgspec

from recursum.clients.cli import client as client_cli
from recursum.service.cli.render import render_tree
from recursum.service.engine.errors import ConfigError, RecursumError
from recursum.service.engine.pipeline.tree import TreeConfig
from recursum.training.cli import train as train_cli

DEFAULTS = TreeConfig()


class _RecursumGroup(click.Group):
    """Turns every `RecursumError` (and unreadable files) into a one-line message, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RecursumError as error:
            click.echo(f"recursum: error: {error}", err=True)
            sys.exit(1)
        except OSError as error:
            click.echo(f"recursum: error: {error.strerror or error}: {error.filename}", err=True)
            sys.exit(1)


@click.group(cls=_RecursumGroup)
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
              help="Adapter bundle from `recursum train levels`; overrides RECURSUM_ADAPTERS.")
@click.option("--dev", is_flag=True, help="Serve without API keys (never in production).")
def serve(host: str, port: int, model_path: str | None, quantization: str | None,
          database_url: str | None, bundle: str | None, dev: bool) -> None:
    """Run the REST service (configuration from RECURSUM_* environment variables)."""
    import uvicorn

    from recursum.service.api.app import create_app
    from recursum.service.engine.models.model_store import pull_default_model
    from recursum.service.settings import settings_from_env

    settings = settings_from_env()
    model = msgspec.structs.replace(settings.model, base=model_path or settings.model.base,
                                    quantization=quantization or settings.model.quantization,
                                    bundle=_bundle(bundle) or settings.model.bundle)
    settings = msgspec.structs.replace(settings, model=model, dev_mode=dev or settings.dev_mode,
                                       database_url=database_url or settings.database_url)
    if not settings.dev_mode and not settings.api_keys:
        raise ConfigError("no API keys configured: set RECURSUM_API_KEYS=name:secret:summarize, "
                          "or pass --dev to serve without keys")
    if model.base is None:
        pull_default_model()  # a no-op once installed
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@cli.command()
@click.option("--model", "model_path", default=None, help="HF dir, .gguf or hub id (default: embedded).")
@click.option("--quantization", type=click.Choice(["nf4", "int8", "none"]), default="nf4", show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--adapter", "adapters", multiple=True, metavar="ROLE=DIR")
@click.option("--adapters", "bundle", default=None, metavar="DIR", help="Adapter bundle directory.")
def doctor(model_path: str | None, quantization: str, device: str, adapters: tuple[str, ...],
           bundle: str | None) -> None:
    """Load the model as the service would and report what the runtime found, with a speed probe."""
    from recursum.service.engine.models.diagnostics import diagnose
    from recursum.service.engine.models.model_store import pull_default_model
    from recursum.service.engine.models.runtime import ModelSpec

    if model_path is None:
        pull_default_model()
    spec = ModelSpec(base=model_path, quantization=quantization, device=device,
                     adapters=_parse_adapters(adapters), bundle=_bundle(bundle))
    for name, value in msgspec.structs.asdict(diagnose(spec)).items():
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


def _tree_config(**options) -> TreeConfig:
    try:
        return msgspec.convert(options, TreeConfig)
    except msgspec.ValidationError as error:
        raise ConfigError(f"invalid option: {error}") from None


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
    if directory is not None and not (Path(directory) / "manifest.json").is_file():
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
@click.option("--chunk-tokens", type=int, default=DEFAULTS.chunk_tokens, show_default=True,
              help="Chunk budget in cl100k tokens.")
@click.option("--merge-tokens", type=int, default=DEFAULTS.merge_tokens, show_default=True,
              help="Token budget of the child summaries one merge reads.")
@click.option("--summary-tokens", type=int, default=DEFAULTS.summary_tokens, show_default=True,
              help="Most tokens one summary may generate.")
@click.option("--batch-size", type=int, default=DEFAULTS.batch_size, show_default=True)
@click.option("--context", type=click.Choice(["none", "preceding-text"]), default="none",
              show_default=True, help="Give each chunk the raw text just before it.")
@click.option("--model", "model_path", default=None,
              help="HF checkpoint dir, .gguf file or hub id (default: embedded SmolLM2-135M).")
@click.option("--quantization", type=click.Choice(["nf4", "int8", "none"]), default="nf4",
              show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--adapter", "adapters", multiple=True, metavar="ROLE=DIR",
              help="A LoRA adapter for a role (chunk, merge, helper, reward); repeatable.")
@click.option("--adapters", "bundle", default=None, metavar="DIR",
              help="Adapter bundle from `recursum train levels` (--adapter overrides it per role).")
@click.option("--best-of", type=int, default=DEFAULTS.best_of, show_default=True,
              help="Candidates per node; the reward adapter keeps the best, the rest stay in the tree.")
@click.option("--best-of-margin", type=float, default=DEFAULTS.best_of_margin, show_default=True,
              help="Reward gain (std units) a sample needs over the greedy summary to replace it.")
@click.option("--max-bytes", type=int, default=20 * 1024 * 1024, show_default=True,
              help="Refuse larger files.")
@click.option("--no-cache", is_flag=True, help="Do not reuse or store generated nodes.")
def summarize(book: Path, out: Path | None, output_format: str, title: str, chunk_tokens: int,
              merge_tokens: int, summary_tokens: int, batch_size: int, context: str,
              model_path: str | None, quantization: str, device: str, adapters: tuple[str, ...],
              bundle: str | None, best_of: int, best_of_margin: float, max_bytes: int,
              no_cache: bool) -> None:
    """Summarize BOOK (a UTF-8 text file) recursively and print the root summary."""
    from recursum.clients.progress import HeightBars
    from recursum.service.engine.models.model_store import pull_default_model, recursum_home
    from recursum.service.engine.models.runtime import ModelSpec, load_runtime
    from recursum.service.engine.pipeline.document import decode_document_bytes, make_document
    from recursum.service.engine.pipeline.events import to_wire
    from recursum.service.engine.pipeline.evidence import EvidenceScorer
    from recursum.service.engine.pipeline.node_cache import DirectoryNodeCache, MemoryNodeCache
    from recursum.service.engine.pipeline.recursion import Summarizer

    config = _tree_config(chunk_tokens=chunk_tokens, merge_tokens=merge_tokens,
                          summary_tokens=summary_tokens, batch_size=batch_size, context=context,
                          best_of=best_of, best_of_margin=best_of_margin)
    spec = ModelSpec(base=model_path, quantization=quantization, device=device,
                     adapters=_parse_adapters(adapters), bundle=_bundle(bundle))
    size = book.stat().st_size
    if size > max_bytes:
        raise RecursumError(f"{book} is {size:,} bytes; the limit is {max_bytes:,} (--max-bytes)")
    document = make_document(decode_document_bytes(book.read_bytes(), max_bytes),
                             title=title or book.stem, max_bytes=max_bytes)
    if model_path is None:
        pull_default_model()  # a no-op once installed
    runtime = load_runtime(spec)
    cache = MemoryNodeCache() if no_cache else DirectoryNodeCache(recursum_home() / "cache" / "nodes")
    summarizer = Summarizer(runtime, EvidenceScorer(), config, cache)
    with HeightBars() as bars:
        tree = summarizer.summarize(document, on_event=lambda event: bars.update(to_wire(event)))
    if out is not None:
        out.write_bytes(msgspec.json.encode(tree))
    click.echo(render_tree(tree, output_format))


cli.add_command(client_cli, name="client")
cli.add_command(train_cli, name="train")

if __name__ == "__main__":
    cli()
