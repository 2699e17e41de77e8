"""`recursum train from-service`: one turn of the loop from evaluators' comparisons to a better served model.

A turn exports the comparisons stored since the last turn (the export's cursor is kept in the work
directory), trains a reward model (and, with `policy`, the chunk and merge policies by DPO) on every summary
comparison exported so far into a new bundle that starts as a copy of the served one, measures it and the
served bundle on the held-out groups, and activates the new bundle (`POST /v1/admin/adapters`) only if its
reward model agrees with the held-out judgements more often than the served bundle does. A served bundle
with a reward model is measured by that model; one without by its own picks (how often evaluators
preferred the summary it chose over a candidate).
"""

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import msgspec

from recursum.clients.client import Client
from recursum.schemas.evaluations import ComparisonRecord
from recursum.service.engine.models.bundle import MANIFEST_FILE, AdapterEntry, read_manifest, write_manifest
from recursum.service.engine.models.runtime import base_directory, fingerprint
from recursum.training.bundling import bundle_manifest, file_sha256, numeric_metrics, with_entry
from recursum.training.datasets import Comparison, read_jsonl, split_by_group, write_jsonl
from recursum.training.dpo import DpoTraining, train_dpo
from recursum.training.reward import RewardTraining, pairwise_accuracy, preference_pairs, train_reward

STATE_FILE = "loop-state.json"
COMPARISONS_FILE = "comparisons.jsonl"
SUMMARY_TASKS = ("chunk", "merge")
SERVED_PICK = "chosen"  # the policy of the summary the served bundle chose, in an exported comparison

ServedBasis = Literal["reward model", "served picks", "chance"]


class LoopState(msgspec.Struct, kw_only=True):
    after: int = 0  # the export cursor: comparisons up to here are in COMPARISONS_FILE
    turns: int = 0


class TurnReport(msgspec.Struct, kw_only=True):
    """What one turn did, printed as JSON: the data, both held-out figures, and the decision."""

    exported: int  # new comparisons this turn
    comparisons: int  # summary comparisons exported so far, all turns
    train_pairs: int = 0
    held_out_pairs: int = 0
    new_accuracy: float | None = None
    served_accuracy: float | None = None
    served_basis: ServedBasis | None = None
    served_version: str | None = None
    bundle: str | None = None  # the new bundle's directory
    activated: bool = False
    reason: str


def run_turn(client: Client, work: Path, reward: RewardTraining, policy: DpoTraining | None,
             held_out: float, activate: bool = True) -> TurnReport:
    """One turn of the loop into `work` (see the module doc)."""
    work.mkdir(parents=True, exist_ok=True)
    state = _read_state(work)
    export = client.export_after(state.after)
    comparisons = _accumulate(work, export.records)
    state.after = export.through
    _write_state(work, state)
    if not export.records:
        return TurnReport(exported=0, comparisons=len(comparisons),
                          reason="no new comparisons since the last turn")
    train, held = split_by_group(comparisons, held_out, seed=state.turns)
    if not preference_pairs(held)[0]:
        return TurnReport(exported=len(export.records), comparisons=len(comparisons),
                          reason="too few comparisons to hold any out: wait for more")
    served = client.adapters()
    served_directory = served.served.directory if served.served else served.directory_here
    bundle = _new_bundle(work, served_directory, reward.lora.base)
    metrics = train_reward(train, held, bundle / "reward", reward)
    manifest = with_entry(read_manifest(bundle), AdapterEntry(
        role="reward", path="reward", heights=sorted({c.height for c in train if c.height is not None}),
        method="reward", data_sha256=file_sha256(work / COMPARISONS_FILE), metrics=numeric_metrics(metrics)))
    for role, examples in _policy_data(train).items() if policy is not None else ():
        dpo = train_dpo(examples, bundle / role, policy, [c for c in held if c.task == role])
        manifest = with_entry(manifest, AdapterEntry(
            role=role, path=role, heights=sorted({c.height for c in examples if c.height is not None}),
            method="dpo", data_sha256=file_sha256(work / COMPARISONS_FILE), metrics=numeric_metrics(dpo)))
    write_manifest(bundle, manifest)
    served_accuracy, basis = _served_accuracy(served_directory, held, reward)
    report = TurnReport(
        exported=len(export.records), comparisons=len(comparisons), train_pairs=metrics.train_pairs,
        held_out_pairs=metrics.held_out_pairs, new_accuracy=metrics.held_out_accuracy,
        served_accuracy=served_accuracy, served_basis=basis, served_version=served.serving_here,
        bundle=str(bundle.resolve()), reason="")
    state.turns += 1
    _write_state(work, state)
    return _decide(client, report, activate)


def _decide(client: Client, report: TurnReport, activate: bool) -> TurnReport:
    new, served = report.new_accuracy, report.served_accuracy
    if new is None or served is None or new <= served:
        return msgspec.structs.replace(report, reason=(
            f"not activated: held-out agreement {new} does not beat the served bundle's {served}"))
    if not activate:
        return msgspec.structs.replace(report,
                                       reason="beats the served bundle; not activated (--no-activate)")
    client.activate_adapters(report.bundle)
    return msgspec.structs.replace(report, activated=True, reason=(
        f"activated: held-out agreement {new:.3f} beats the served bundle's {served:.3f} "
        f"({report.served_basis})"))


def _read_state(work: Path) -> LoopState:
    path = work / STATE_FILE
    return msgspec.json.decode(path.read_bytes(), type=LoopState) if path.exists() else LoopState()


def _write_state(work: Path, state: LoopState) -> None:
    partial = work / (STATE_FILE + ".partial")
    partial.write_bytes(msgspec.json.encode(state))
    partial.replace(work / STATE_FILE)


def _accumulate(work: Path, records: Sequence[ComparisonRecord]) -> list[Comparison]:
    """Every summary comparison exported so far, the new ones added (once each, by id)."""
    path = work / COMPARISONS_FILE
    known = list(read_jsonl(path, Comparison)) if path.exists() else []
    seen = {c.id for c in known}
    fresh = [msgspec.convert(msgspec.to_builtins(r), Comparison) for r in records
             if r.task in SUMMARY_TASKS and r.id not in seen]
    write_jsonl(path, known + fresh)
    return known + fresh


def _new_bundle(work: Path, served: str | None, base: str | None) -> Path:
    """A new bundle directory holding a copy of the served bundle (its adapters stay unless retrained)."""
    bundle = work / "bundles" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    if served is not None and (Path(served) / MANIFEST_FILE).is_file():
        shutil.copytree(served, bundle, ignore=shutil.ignore_patterns("data", "state.json"))
        manifest = read_manifest(bundle)
        trained_for = fingerprint(base_directory(base))
        if manifest.base_fingerprint != trained_for:
            raise ValueError(f"the served bundle {served} was made for base {manifest.base}, not the --base "
                             "this turn trains on; pass the server's base model")
    else:
        bundle.mkdir(parents=True)
        write_manifest(bundle, bundle_manifest(bundle, base))
    return bundle


def _policy_data(train: Sequence[Comparison]) -> dict[str, list[Comparison]]:
    """The comparisons of each role with a preference to learn from."""
    by_role = {role: [c for c in train if c.task == role] for role in SUMMARY_TASKS}
    return {role: examples for role, examples in by_role.items() if preference_pairs(examples)[0]}


def _served_accuracy(served: str | None, held: Sequence[Comparison],
                     reward: RewardTraining) -> tuple[float, ServedBasis]:
    """How often the served bundle agrees with the held-out judgements: its reward model's pairwise accuracy,
    or without one, the share of judged pairs in which the evaluator preferred the summary it chose."""
    if served is not None and (Path(served) / MANIFEST_FILE).is_file():
        paths = read_manifest(served).adapter_paths(served)
        if "reward" in paths:
            return pairwise_accuracy(Path(paths["reward"]), held, reward.lora)[0], "reward model"
    picks = [c.policies[c.preferred] == SERVED_PICK for c in held
             if c.preferred != "tie" and c.policies and SERVED_PICK in c.policies]
    if not picks:
        return 0.5, "chance"
    return sum(picks) / len(picks), "served picks"
