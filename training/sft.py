"""Behavioural cloning: LoRA fine-tuning on demonstrations with TRL's SFTTrainer (loss on the
summary tokens only)."""

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from recursum.training.critique_data import verification_demonstrations
from recursum.training.datasets import Demonstration
from recursum.training.formatting import assistant, prompt_messages
from recursum.training.modeling import (
    LoraTraining,
    load_tokenizer,
    make_trainer,
    sequence_limit,
    trainable_model,
    trainer_args,
)


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
    tokenizer = load_tokenizer(config.lora.base)
    model = trainable_model(config.lora, head="causal")
    limit = sequence_limit(config.max_tokens, model)
    dataset = Dataset.from_list([
        {"prompt": prompt_messages(tokenizer, limit, d.task, d.input, d.output),
         "completion": assistant(d.output)}
        for d in demonstrations
    ])
    with tempfile.TemporaryDirectory() as scratch:
        args = SFTConfig(max_length=limit, logging_steps=1, **trainer_args(config, scratch))
        trainer = make_trainer(SFTTrainer, model, args, dataset, tokenizer)
        trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    return SftMetrics(examples=len(demonstrations), first_loss=losses[0], final_loss=losses[-1],
                      seconds=time.perf_counter() - started)
