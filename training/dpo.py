"""Direct preference optimisation with TRL's DPOTrainer on comparisons.

The reference policy is the adapter-disabled base (TRL's default for a peft model, so no second
copy of the model is loaded), also when training continues from an SFT adapter (`init_adapter`):
the KL anchor is the base the service falls back to without adapters.
"""

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from recursum.training.datasets import Comparison
from recursum.training.formatting import assistant, prompt_messages
from recursum.training.modeling import LoraTraining, load_trainable, run_trainer
from recursum.training.reward import preference_pairs


class DpoTraining(LoraTraining):
    """How to train a policy with DPO: `LoraTraining`'s settings (a batch counts pairs) and the
    preference loss's."""

    default_learning_rate: ClassVar[float] = 5e-5
    default_batch_size: ClassVar[int] = 2

    beta: Annotated[float, Meta(gt=0, description=(
        "DPO's beta: how strongly the policy is held to the reference (the adapter-disabled base); "
        "higher means less deviation from it."
    ))] = 0.1
    sft_weight: Annotated[float, Meta(ge=0, description=(
        "> 0 adds the chosen summaries' NLL with this weight (RPO, Pang et al. 2024): needed when the "
        "chosen side is a reference the policy would never sample, e.g. the helper's format before it "
        "is learnt."
    ))] = 0.0


class DpoMetrics(msgspec.Struct, kw_only=True):
    pairs: int
    ties_dropped: int
    final_loss: float
    reward_accuracy: float  # TRL's rewards/accuracies over the last logged steps
    reward_margin: float  # TRL's rewards/margins
    seconds: float


def train_dpo(comparisons: Sequence[Comparison], out: Path, config: DpoTraining,
              held_out: Sequence[Comparison] = ()) -> DpoMetrics:
    """Train a LoRA policy on the preferences and save it to `out`; with `config.early_stop`, its loss on
    `held_out` decides when to stop."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    pairs, ties = preference_pairs(comparisons)
    if not pairs:
        raise ValueError("no comparison with a preference (every one is a tie): nothing to train on")
    started = time.perf_counter()
    tokenizer, model, limit = load_trainable(config, head="causal")

    def rows(examples: list[tuple[Comparison, str, str]]) -> Dataset:
        return Dataset.from_list([
            {"prompt": prompt_messages(tokenizer, limit, c.task, c.input, max(chosen, rejected, key=len)),
             "chosen": assistant(chosen), "rejected": assistant(rejected)}
            for c, chosen, rejected in examples
        ])

    held = preference_pairs(held_out)[0] if config.early_stop else []
    trainer, _ = run_trainer(
        DPOTrainer, DPOConfig, config, model, rows(pairs), tokenizer, out,
        eval_dataset=rows(held) if held else None,
        beta=config.beta, loss_type=["sigmoid", "sft"] if config.sft_weight else ["sigmoid"],
        loss_weights=[1.0, config.sft_weight] if config.sft_weight else None, max_length=limit,
    )
    logged = [entry for entry in trainer.state.log_history if "rewards/accuracies" in entry]
    recent = logged[-max(1, len(logged) // 4):]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    return DpoMetrics(
        pairs=len(pairs), ties_dropped=ties, final_loss=logged[-1]["loss"],
        reward_accuracy=sum(e["rewards/accuracies"] for e in recent) / len(recent),
        reward_margin=sum(e["rewards/margins"] for e in recent) / len(recent),
        seconds=time.perf_counter() - started,
    )
