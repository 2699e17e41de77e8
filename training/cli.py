"""`recursum train ...`: thin CLI entries over the training modules."""

from pathlib import Path

import click
import msgspec

from recursum.clients.cli_errors import one_line_errors
from recursum.clients.exceptions import RecursumClientError
from recursum.training.validate import DEFAULT_MAX_INPUT_TOKENS


class TrainingError(ValueError):
    """A bad argument or data file. Training methods validate their configs and data with ValueError
    (msgspec's ValidationError is one): those are the user's to fix, one line on stderr, exit code 1."""


@click.group(cls=one_line_errors(ValueError, RecursumClientError))
def train() -> None:
    """Train recursum's adapters and prepare their data."""


@train.group(cls=one_line_errors(ValueError))
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
    from recursum.training.validate import detect_kind, validate_file

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
    from recursum.training.datasets import now, write_jsonl
    from recursum.training.squality import DEFAULT_SOURCE, import_squality

    written = write_jsonl(out, import_squality(source or DEFAULT_SOURCE, created=now()))
    click.echo(f"wrote {written} comparisons to {out}", err=True)


@data.command("squality-chunks")
@click.option("--references", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A SQuALITY split JSONL [default: ../shared/data/references/squality/train.jsonl; dev is "
                   "for reporting, never for training].")
@click.option("--chunk-tokens", type=click.IntRange(min=32), default=600, show_default=True,
              help="Chunk budget: the service's, so demonstrations look like what the chunk role reads.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Demonstrations JSONL to write (replaced).")
def squality_chunks_command(references: Path | None, chunk_tokens: int, out: Path) -> None:
    """Turn SQuALITY's human plot summaries into chunk demonstrations for `train sft`.

    Each summary sentence goes with the chunk holding its closest source sentence; a chunk's demonstration
    is the summary's sentences placed there. The group is the story, so splits never mix stories.
    """
    from recursum.service.engine.pipeline.evidence import EvidenceScorer
    from recursum.training.datasets import write_jsonl
    from recursum.training.squality_demonstrations import (
        DEFAULT_REFERENCES,
        PlacementConfig,
        chunk_demonstrations,
        read_stories,
    )

    scorer, config = EvidenceScorer(), PlacementConfig(chunk_tokens=chunk_tokens)
    stories = read_stories(references or DEFAULT_REFERENCES / "train.jsonl")
    demonstrations = (demo for story in stories for demo in chunk_demonstrations(story, scorer, config))
    written = write_jsonl(out, demonstrations)
    click.echo(f"wrote {written} demonstrations from {len(stories)} stories to {out}", err=True)


def _lora_options(command):
    """Model and LoRA options every training method shares."""
    options = [
        click.option("--base", default=None, help="Base model: HF dir, .gguf or hub id [default: embedded]."),
        click.option("--quantization", type=click.Choice(["nf4", "none"]), default="nf4", show_default=True,
                     help="nf4 = QLoRA (works on CPU and CUDA)."),
        click.option("--rank", type=click.IntRange(1, 256), default=16, show_default=True, help="LoRA rank."),
        click.option("--init-adapter", type=click.Path(file_okay=False), default=None,
                     help="Continue training this adapter instead of a fresh LoRA."),
        click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True),
        click.option("--max-steps", type=int, default=-1, show_default=True, help="> 0 overrides --epochs."),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Learning rate [default: the method's]."),
        click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help="Examples (pairs) per step [default: the method's]."),
        click.option("--early-stop", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Stop after N held-out evaluations without improvement; keep the best adapter."),
        click.option("--eval-steps", type=click.IntRange(min=1), default=10, show_default=True,
                     help="Steps between held-out evaluations (with --early-stop)."),
        click.option("--report-to", type=click.Choice(["tensorboard"]), multiple=True,
                     help="Also log to this tracker, beside the adapter (needs its package)."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
                     help="Adapter directory to write; its training-log.jsonl gets every step's metrics."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _method_config(config_type, base, quantization, rank, init_adapter, epochs, max_steps, lr, batch_size,
                   early_stop, eval_steps, report_to):
    from recursum.training.modeling import LoraSettings

    lora = LoraSettings(base=base, quantization=quantization, rank=rank, alpha=2 * rank,
                        init_adapter=init_adapter)
    chosen = {"learning_rate": lr, "batch_size": batch_size}
    return config_type(lora=lora, epochs=epochs, max_steps=max_steps, early_stop=early_stop,
                       eval_steps=eval_steps, report_to=tuple(report_to),
                       **{name: value for name, value in chosen.items() if value is not None})


_HELD_OUT = click.option("--held-out", type=click.FloatRange(0, 1, max_open=True), default=0.2,
                         show_default=True, help="Share of groups (stories, books) held out for the "
                         "held-out metrics and --early-stop.")


def _comparisons(path: Path, tasks: tuple[str, ...]):
    from recursum.training.datasets import Comparison, read_jsonl

    try:
        records = [c for c in read_jsonl(path, Comparison) if not tasks or c.task in tasks]
    except (msgspec.DecodeError, ValueError) as error:
        raise TrainingError(f"{error} (run `recursum train data validate {path}` to list every bad line)") \
            from None
    if not records:
        raise TrainingError(f"{path} has no comparisons" + (f" for task {'|'.join(tasks)}" if tasks else ""))
    return records


@train.command("reward")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Comparisons JSONL.")
@click.option("--task", "tasks", multiple=True, help="Only these tasks (repeatable) [default: all].")
@_HELD_OUT
@click.option("--max-tokens", type=click.IntRange(min=64), default=1024, show_default=True,
              help="Budget of one (prompt, summary) sequence; the prompt's passage is trimmed to fit.")
@_lora_options
def reward_command(data: Path, tasks: tuple[str, ...], held_out: float, max_tokens: int, out: Path,
                   **lora) -> None:
    """Train a Bradley-Terry reward model (LoRA + scalar head) on comparisons."""
    from recursum.training.datasets import split_by_group
    from recursum.training.reward import RewardTraining, train_reward

    config = msgspec.structs.replace(_method_config(RewardTraining, **lora), max_tokens=max_tokens)
    train_part, held_part = split_by_group(_comparisons(data, tasks), held_out, seed=config.seed)
    metrics = train_reward(train_part, held_part, out, config)
    click.echo(msgspec.json.encode(metrics).decode())


@train.command("dpo")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Comparisons JSONL.")
@click.option("--task", "tasks", multiple=True, help="Only these tasks (repeatable) [default: all].")
@click.option("--beta", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True)
@_HELD_OUT
@_lora_options
def dpo_command(data: Path, tasks: tuple[str, ...], beta: float, held_out: float, out: Path, **lora) -> None:
    """Train a policy adapter with DPO (reference: the adapter-disabled base)."""
    from recursum.training.dpo import DpoTraining, train_dpo

    config = msgspec.structs.replace(_method_config(DpoTraining, **lora), beta=beta)
    train_part, held_part = _early_stop_split(_comparisons(data, tasks), held_out, config)
    click.echo(msgspec.json.encode(train_dpo(train_part, out, config, held_part)).decode())


def _early_stop_split(records, held_out: float, config):
    """(to train on, held out): whole groups held out only where early stopping watches them."""
    from recursum.training.datasets import split_by_group

    if not config.early_stop:
        return records, []
    return split_by_group(records, held_out, seed=config.seed)


@train.command("sft")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Demonstrations JSONL.")
@click.option("--role", type=click.Choice(["chunk", "merge", "helper"]), default=None,
              help="Write --out as an adapter bundle the service loads (--adapters DIR), with the adapter as "
                   "this role's; other roles already in the bundle stay.")
@_HELD_OUT
@_lora_options
def sft_command(data: Path, role: str | None, held_out: float, out: Path, **lora) -> None:
    """Behavioural cloning: fine-tune a LoRA on demonstrations."""
    from recursum.service.engine.models.bundle import AdapterEntry
    from recursum.training.bundling import add_to_bundle, file_sha256, numeric_metrics
    from recursum.training.datasets import Demonstration, read_jsonl
    from recursum.training.sft import SftTraining, train_sft

    demonstrations = list(read_jsonl(data, Demonstration))  # a bad line is a ValueError: one line, exit 1
    config = _method_config(SftTraining, **lora)
    train_part, held_part = _early_stop_split(demonstrations, held_out, config)
    metrics = train_sft(train_part, out / role if role else out, config, held_part)
    if role:
        heights = sorted({d.height for d in demonstrations if d.height is not None})
        entry = AdapterEntry(role=role, path=role, heights=heights, method="sft",
                             data_sha256=file_sha256(data), metrics=numeric_metrics(metrics))
        add_to_bundle(out, entry, config.lora.base)
    click.echo(msgspec.json.encode(metrics).decode())


@data.command("synth")
@click.option("--book", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--task", type=click.Choice(["chunk", "merge"]), required=True)
@click.option("--n", type=click.IntRange(min=1), required=True, help="Comparisons to write (at most).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--best-of", type=click.IntRange(2, 16), default=4, show_default=True,
              help="Candidates per node: the greedy summary and samples.")
@click.option("--max-chars", type=click.IntRange(min=1000), default=30_000, show_default=True,
              help="Summarize this much of the book.")
@click.option("--adapters", "bundle", default=None, metavar="DIR",
              help="Summarize with this bundle (merge inputs then come from its trained chunk level).")
@click.option("--base", default=None, help="Base model [default: embedded].")
@click.option("--labeler-seed", type=int, default=0, show_default=True)
@click.option("--labeler-noise", type=click.FloatRange(min=0), default=0.02, show_default=True)
def synth_command(book: Path, task: str, n: int, out: Path, best_of: int, max_chars: int,
                  bundle: str | None, base: str | None, labeler_seed: int, labeler_noise: float) -> None:
    """Comparisons of the current model's candidate summaries of BOOK, judged by the SIMULATED labeler."""
    from recursum.service.engine.models.runtime import load_runtime
    from recursum.service.engine.models.spec import ModelSpec
    from recursum.service.engine.pipeline.evidence import EvidenceScorer
    from recursum.training.datasets import write_jsonl
    from recursum.training.labeler import LabelerConfig, SimulatedLabeler
    from recursum.training.synth import SynthConfig, synthesize

    runtime = load_runtime(ModelSpec(base=base, bundle=bundle))
    scorer = EvidenceScorer()
    labeler = SimulatedLabeler(scorer, LabelerConfig(seed=labeler_seed, noise=labeler_noise))
    config = SynthConfig(task=task, n=n, best_of=best_of, max_chars=max_chars)
    written = write_jsonl(out, synthesize(runtime, scorer, labeler, book, config))
    click.echo(f"wrote {written} {task} comparisons (simulated labeler) to {out}", err=True)


@train.command("levels")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="levels.toml (see examples/levels.toml).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Bundle directory; an interrupted run resumes from it.")
@click.option("--hook", "hook_url", default=None, metavar="URL",
              help="POST each finished stage's metrics here, signed with RECURSUM_TRAIN_HOOK_SECRET "
                   "(Standard Webhooks, like job callbacks).")
def levels_command(config_path: Path, out: Path, hook_url: str | None) -> None:
    """Train chunk, merge and helper adapters level by level into an adapter bundle."""
    from recursum.training.helper_training import train_helper_stage
    from recursum.training.levels import load_config, run_levels
    from recursum.training.stage_hook import StageHook

    try:
        config = load_config(config_path)
    except ValueError as error:
        raise TrainingError(str(error)) from None
    hook = StageHook.from_environment(hook_url) if hook_url else None
    manifest = run_levels(config, out, helper_stage=train_helper_stage, on_stage=hook)
    for entry in manifest.adapters:
        click.echo(f"{entry.role}\theights {entry.heights}\t{entry.method}\t{entry.metrics}")


@train.command("from-service")
@click.option("--server", envvar="RECURSUM_SERVER", required=True, metavar="URL",
              help="The service (env RECURSUM_SERVER).")
@click.option("--api-key", envvar="RECURSUM_API_KEY", default=None,
              help="An admin key (env RECURSUM_API_KEY): export and activation are admin routes.")
@click.option("--policy", type=click.Choice(["none", "dpo"]), default="none", show_default=True,
              help="Also train the chunk and merge policies by DPO on the comparisons.")
@_HELD_OUT
@click.option("--activate/--no-activate", default=True, show_default=True,
              help="Activate the new bundle when it beats the served one.")
@_lora_options
def from_service_command(server: str, api_key: str | None, policy: str, held_out: float, activate: bool,
                         out: Path, **lora) -> None:
    """One turn of the loop: export the comparisons since the last turn, train a reward model (and policies)
    into a new bundle under OUT/bundles/, and activate it only if it beats the served bundle on held-out
    comparisons. OUT keeps the export cursor and the comparisons so far; run it again for the next turn."""
    from recursum.clients.client import Client
    from recursum.training.dpo import DpoTraining
    from recursum.training.from_service import run_turn
    from recursum.training.reward import RewardTraining

    reward = _method_config(RewardTraining, **lora)
    dpo = _method_config(DpoTraining, **lora) if policy == "dpo" else None
    with Client(server, api_key) as remote:
        report = run_turn(remote, out, reward, dpo, held_out, activate)
    click.echo(report.reason, err=True)
    click.echo(msgspec.json.encode(report).decode())
