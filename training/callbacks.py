"""What a training run reports while it trains, as transformers `TrainerCallback`s (TRL's trainers take
them): a progress bar with the loss and the ETA on stderr, and a per-step metrics log (JSONL) beside the
adapter. Early stopping is transformers' own `EarlyStoppingCallback` (`modeling.trainer_args`)."""

import sys
import time
from pathlib import Path

import msgspec
from tqdm.auto import tqdm
from transformers import TrainerCallback

METRICS_FILE = "training-log.jsonl"


class ProgressBar(TrainerCallback):
    """One bar per run on stderr: steps done of all, time left, the latest training and held-out loss."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: tqdm | None = None

    def on_train_begin(self, args, state, control, **kwargs) -> None:
        self.bar = tqdm(total=state.max_steps, desc=self.label, unit="step", file=sys.stderr,
                        dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if self.bar is None or not logs:
            return
        shown = {name: f"{logs[name]:.4g}" for name in ("loss", "eval_loss") if name in logs}
        if shown:
            self.bar.set_postfix(shown, refresh=False)

    def on_train_end(self, args, state, control, **kwargs) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class MetricsLog(TrainerCallback):
    """Every logged step as one JSON line: step, epoch, wall time and what the trainer logged (loss,
    learning rate, grad norm, the method's own figures, held-out ones at each evaluation)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_begin(self, args, state, control, **kwargs) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"")  # a rerun into the same directory starts a fresh log

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        record = {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **(logs or {})}
        with self.path.open("ab") as log:
            log.write(msgspec.json.encode(record) + b"\n")


def read_metrics_log(path: Path) -> list[dict]:
    """The records a run's `MetricsLog` wrote, in order."""
    return [msgspec.json.decode(line) for line in path.read_bytes().splitlines() if line.strip()]
