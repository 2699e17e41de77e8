"""The level-by-level curriculum (Wu et al. 2021): height 0 first, then each merge height on the
summaries the newly trained lower level writes, then the helper.

Stages run in order: for each height, `synth` (comparisons from the current bundle's summaries,
judged by the SIMULATED labeler, plus any human comparisons given for that task), `reward`
(Bradley-Terry on every comparison so far) and `policy` (DPO for the height's role); finally
`helper`. Every finished stage is recorded in `state.json` and the bundle manifest is rewritten, so
an interrupted run resumes at the first unfinished stage and the bundle is loadable at any point.
"""

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from recursum.service.engine.models.bundle import AdapterEntry, BundleManifest, write_manifest
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import NO_BUNDLE, ModelSpec
from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.training.bundling import bundle_manifest, file_sha256, numeric_metrics, with_entry
from recursum.training.datasets import Comparison, read_jsonl, split_by_group, write_jsonl
from recursum.training.dpo import DpoTraining, train_dpo
from recursum.training.labeler import LabelerConfig, SimulatedLabeler
from recursum.training.modeling import LoraSettings
from recursum.training.reward import RewardTraining, train_reward
from recursum.training.sft import SftTraining
from recursum.training.stage_hook import StageDone
from recursum.training.synth import SynthConfig, synthesize

log = logging.getLogger("recursum.train.levels")
STATE_FILE = "state.json"


class LevelsData(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    books: list[str]  # plain-text books the model summarizes for synthetic comparisons
    comparisons: list[str] = []  # extra JSONL comparisons (e.g. exported by evaluators), used by task
    comparisons_per_level: Annotated[int, Meta(ge=2)] = 64  # synthetic, per book and height
    max_chars: Annotated[int, Meta(ge=1000)] = 30_000
    best_of: Annotated[int, Meta(ge=2, le=16)] = 4
    chunk_tokens: Annotated[int, Meta(ge=32)] = 600
    summary_tokens: Annotated[int, Meta(ge=8)] = 200
    labeler_seed: int = 0
    labeler_noise: Annotated[float, Meta(ge=0)] = 0.02


class LevelsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`levels.toml`: what to train, on what, and how."""

    max_height: Annotated[int, Meta(ge=0, le=8)] = 1  # 0 trains only the chunk level
    policy: Literal["dpo", "none"] = "dpo"  # "none": reward model only (best-of-n at serving)
    helper: bool = True
    held_out_fraction: Annotated[float, Meta(ge=0.0, lt=1.0)] = 0.2
    lora: LoraSettings = LoraSettings()
    data: LevelsData
    reward: RewardTraining = RewardTraining()
    dpo: DpoTraining = DpoTraining()
    helper_sft: SftTraining = SftTraining(epochs=3.0)  # the critique helper's warm start, before its DPO

    def __post_init__(self) -> None:
        if not self.data.books and not self.data.comparisons:
            raise ValueError("[data] needs books (for synthetic comparisons) or comparisons files")


class LevelsState(msgspec.Struct, kw_only=True):
    finished: list[str] = []


def load_config(path: Path) -> LevelsConfig:
    """Decode `levels.toml`; errors name the field."""
    try:
        return msgspec.toml.decode(path.read_bytes(), type=LevelsConfig)
    except msgspec.ValidationError as error:
        raise ValueError(f"{path}: {error}") from None


def stages(config: LevelsConfig) -> list[str]:
    steps = ("synth", "reward", "policy") if config.policy != "none" else ("synth", "reward")
    names = [f"{step}:{height}" for height in range(config.max_height + 1) for step in steps]
    return names + (["helper"] if config.helper else [])


def run_levels(config: LevelsConfig, out: Path,
               helper_stage: Callable[[LevelsConfig, Path], AdapterEntry] | None = None,
               stop_after: str | None = None,
               on_stage: Callable[[StageDone], None] | None = None) -> BundleManifest:
    """Run (or resume) the curriculum into bundle directory `out`; returns the final manifest.

    `on_stage` is told of each stage once it is recorded (`--hook`); `stop_after` ends the run after that
    stage (tests interrupt it that way).
    """
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    state = msgspec.json.decode(state_path.read_bytes(), type=LevelsState) if state_path.exists() \
        else LevelsState()
    manifest = bundle_manifest(out, config.lora.base)
    for stage in stages(config):
        if stage in state.finished:
            continue
        log.info("stage %s", stage)
        step, _, height = stage.partition(":")
        entry, written = None, None
        match step:
            case "synth":
                written = _synth(config, out, int(height), manifest)
            case "reward":
                entry = _reward(config, out, int(height))
            case "policy":
                entry = _policy(config, out, int(height))
            case "helper":
                if helper_stage is None:
                    raise ValueError("the helper stage needs a helper trainer")
                entry = helper_stage(config, out)
        if entry is not None:
            manifest = with_entry(manifest, entry)
        write_manifest(out, manifest)
        state.finished.append(stage)
        state_path.write_bytes(msgspec.json.encode(state))
        if on_stage is not None:
            on_stage(StageDone(stage=stage, bundle=str(out.resolve()), adapter=entry, comparisons=written,
                               finished=list(state.finished),
                               remaining=[s for s in stages(config) if s not in state.finished]))
        if stage == stop_after:
            break
    return manifest


def task_of(height: int) -> Literal["chunk", "merge"]:
    return "chunk" if height == 0 else "merge"


def level_data(out: Path, height: int) -> Path:
    return out / "data" / f"level-{height}.jsonl"


def _synth(config: LevelsConfig, out: Path, height: int, manifest: BundleManifest) -> int:
    """Comparisons for `height` from summaries made with the bundle trained so far; the last level
    also takes the heights above it (one merge adapter serves them all)."""
    data = config.data
    spec = ModelSpec(base=config.lora.base, quantization=config.lora.quantization,
                     bundle=str(out) if manifest.adapters else NO_BUNDLE)
    runtime = load_runtime(spec)
    scorer = EvidenceScorer()
    labeler_config = LabelerConfig(seed=data.labeler_seed + height, noise=data.labeler_noise)
    labeler = SimulatedLabeler(scorer, labeler_config)
    synth = SynthConfig(task=task_of(height), n=data.comparisons_per_level, best_of=data.best_of,
                        max_chars=data.max_chars, chunk_tokens=data.chunk_tokens,
                        summary_tokens=data.summary_tokens, seed=height)
    synthetic = (c for book in data.books for c in synthesize(runtime, scorer, labeler, Path(book), synth))
    given = (c for path in data.comparisons for c in read_jsonl(Path(path), Comparison))
    last = height == config.max_height
    comparisons = [c for c in (*synthetic, *given) if c.task == task_of(height) and c.height is not None
                   and (c.height == height or (last and c.height > height))]
    level_data(out, height).parent.mkdir(parents=True, exist_ok=True)
    return write_jsonl(level_data(out, height), comparisons)


def _read_levels(out: Path, heights: range) -> list[Comparison]:
    return [c for h in heights for c in read_jsonl(level_data(out, h), Comparison)]


def _data_hash(out: Path, heights: range) -> str:
    return file_sha256(*(level_data(out, h) for h in heights))


def _reward(config: LevelsConfig, out: Path, height: int) -> AdapterEntry:
    """One reward model for every height so far (Wu et al. also trained one model for all tasks)."""
    heights = range(height + 1)
    train, held_out = split_by_group(_read_levels(out, heights), config.held_out_fraction, seed=height)
    target = out / "reward"
    shutil.rmtree(target, ignore_errors=True)
    reward = msgspec.structs.replace(config.reward, lora=config.lora)
    metrics = train_reward(train, held_out, target, reward)
    return AdapterEntry(role="reward", path="reward", heights=list(heights), method="reward",
                        data_sha256=_data_hash(out, heights), metrics=numeric_metrics(metrics))


def _policy(config: LevelsConfig, out: Path, height: int) -> AdapterEntry:
    """DPO for the height's role; merge heights share one merge adapter trained on all of them."""
    role = task_of(height)
    heights = range(height + 1) if role == "chunk" else range(1, height + 1)
    target = out / role
    shutil.rmtree(target, ignore_errors=True)
    dpo = msgspec.structs.replace(config.dpo, lora=config.lora)
    comparisons, held_out = _read_levels(out, heights), []
    if dpo.early_stop:  # otherwise the policy trains on every comparison, as before
        comparisons, held_out = split_by_group(comparisons, config.held_out_fraction, seed=height)
    metrics = train_dpo(comparisons, target, dpo, held_out)
    return AdapterEntry(role=role, path=role, heights=list(heights), method="dpo",
                        data_sha256=_data_hash(out, heights), metrics=numeric_metrics(metrics))
