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


def train_sft(demonstrations: Sequence[Demonstration], out: Path, config: SftTraining) -> SftMetrics:
    """Fine-tune a LoRA on the demonstrations and save it to `out`."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    demonstrations = verification_demonstrations(demonstrations)  # critiques as the helper is served
    if not demonstrations:
        raise ValueError("no demonstrations to train on")
    started = time.perf_counter()
    tokenizer, model, limit = load_trainable(config, head="causal")
    dataset = Dataset.from_list([
        {"prompt": prompt_messages(tokenizer, limit, d.task, d.input, d.output),
         "completion": assistant(d.output)}
        for d in demonstrations
    ])
    trainer, _ = run_trainer(SFTTrainer, SFTConfig, config, model, dataset, tokenizer,
                             max_length=limit, logging_steps=1)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    return SftMetrics(examples=len(demonstrations), first_loss=losses[0], final_loss=losses[-1],
                      seconds=time.perf_counter() - started)
