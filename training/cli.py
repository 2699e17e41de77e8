"""`recursum train ...`: thin CLI entries over the training modules."""

from pathlib import Path

import click

from training.validate import DEFAULT_MAX_INPUT_TOKENS


@click.group()
def train() -> None:
    """Train recursum's adapters and prepare their data."""


@train.group()
def data() -> None:
    """Check and import training data (JSONL demonstrations and comparisons)."""


@data.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "kind", type=click.Choice(["auto", "comparison", "demonstration"]), default="auto",
              show_default=True, help="Record type; auto looks at the first JSON line.")
@click.option("--max-input-tokens", type=click.IntRange(min=1), default=DEFAULT_MAX_INPUT_TOKENS,
              show_default=True, help="Context budget (cl100k tokens) for input plus the longest output.")
def validate(file: Path, kind: str, max_input_tokens: int) -> None:
    """List every bad line of FILE with its number and reason; exit 1 if there is any."""
    from training.validate import detect_kind, validate_file

    report = validate_file(file, detect_kind(file) if kind == "auto" else kind, max_input_tokens)
    for bad in report.bad:
        click.echo(f"{file}:{bad.line}: {bad.reason}")
    counts = ", ".join(f"{n} {problem}" for problem, n in sorted(report.problem_counts().items()))
    click.echo(f"{report.lines} {report.kind} lines: {report.good} good, {len(report.bad)} bad"
               + (f" ({counts})" if counts else ""), err=True)
    if report.bad:
        raise SystemExit(1)


@data.command("import-squality")
@click.option("--source", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory with pairwise.jsonl and stories.jsonl [default: ../shared/data/comparisons/"
                   "squality_human_eval next to the repository].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Comparisons JSONL to write (replaced).")
def import_squality_command(source: Path | None, out: Path) -> None:
    """Convert SQuALITY's human pairwise judgements into `root` comparisons.

    Each input is the question plus the whole story; the group is the story, the evaluator the reviewer.
    """
    from training.datasets import now, write_jsonl
    from training.squality import DEFAULT_SOURCE, import_squality

    written = write_jsonl(out, import_squality(source or DEFAULT_SOURCE, created=now()))
    click.echo(f"wrote {written} comparisons to {out}", err=True)
