"""Behavioural cloning: LoRA fine-tuning on demonstrations with TRL's SFTTrainer (loss on the
summary tokens only)."""

import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from recursum.training.critique_data import verification_demonstrations
from recursum.training.datasets import Demonstration
from recursum.training.formatting import assistant, prompt_messages
from recursum.training.modeling import LoraTraining, load_trainable, run_trainer


class SftTraining(LoraTraining):
    """How to fine-tune on demonstrations: `LoraTraining`'s settings as they are."""


class SftMetrics(msgspec.Struct, kw_only=True):
    examples: int
    first_loss: float
    final_loss: float
    seconds: float


def train_sft(demonstrations: Sequence[Demonstration], out: Path, config: SftTraining,
              held_out: Sequence[Demonstration] = ()) -> SftMetrics:
    """Fine-tune a LoRA on the demonstrations and save it to `out`; with `config.early_stop`, its loss on
    `held_out` decides when to stop."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    demonstrations = verification_demonstrations(demonstrations)  # critiques as the helper is served
    if not demonstrations:
        raise ValueError("no demonstrations to train on")
    started = time.perf_counter()
    tokenizer, model, limit = load_trainable(config, head="causal")

    def rows(examples: Sequence[Demonstration]) -> Dataset:
        return Dataset.from_list([{"prompt": prompt_messages(tokenizer, limit, d.task, d.input, d.output),
                                   "completion": assistant(d.output)} for d in examples])

    held = verification_demonstrations(held_out) if config.early_stop else []
    trainer, _ = run_trainer(SFTTrainer, SFTConfig, config, model, rows(demonstrations), tokenizer, out,
                             eval_dataset=rows(held) if held else None, max_length=limit)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    return SftMetrics(examples=len(demonstrations), first_loss=losses[0], final_loss=losses[-1],
                      seconds=time.perf_counter() - started)
