"""Bradley-Terry reward model: base + LoRA + scalar head, trained with TRL's RewardTrainer on comparisons.

Pairs are tokenized here, not by TRL, with the engine's `reward_input_ids`: the same chat format,
the same trimming of long inputs (TRL would cut the sequence's end, i.e. the summary) and the same
pooling token as the service's best-of-n scoring. The trained sequence classifier is exported as a
causal-LM LoRA plus `reward_head.safetensors`, so the service runs it on its one in-memory base.
Ties carry no Bradley-Terry signal and are dropped; confidence is not used as a weight.
"""

import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import torch

from recursum.service.engine.models.reward import reward_input_ids, score_pairs
from recursum.service.engine.models.reward_head import RewardHead, RewardMeta
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import NO_BUNDLE, ModelSpec
from recursum.service.engine.pipeline.prompts import task_prompt
from recursum.training.critique_data import verification_comparisons
from recursum.training.datasets import Comparison
from recursum.training.modeling import LoraSettings, LoraTraining, load_trainable, run_trainer

STATS_SAMPLE = 64  # training candidates scored after training to set the served normalisation


class RewardTraining(LoraTraining):
    """How to train a reward model: `LoraTraining`'s settings as they are (a sequence is one
    (prompt, summary), a batch counts pairs)."""


class RewardMetrics(msgspec.Struct, kw_only=True):
    """What `train reward` logs and the bundle manifest keeps."""

    train_pairs: int
    held_out_pairs: int
    ties_dropped: int
    train_loss: float
    held_out_accuracy: float | None
    held_out_margin: float | None
    reward_mean: float
    reward_std: float
    seconds: float


def preference_pairs(comparisons: Sequence[Comparison]) -> tuple[list[tuple[Comparison, str, str]], int]:
    """(comparison, chosen, rejected) for every non-tie comparison, and how many ties were dropped;
    critique comparisons count as the sentence verifications they stand for (`critique_data`)."""
    comparisons = verification_comparisons(comparisons)
    pairs = [(c, c.candidates[c.preferred], c.candidates[1 - c.preferred])
             for c in comparisons if c.preferred != "tie"]
    return pairs, len(comparisons) - len(pairs)


def train_reward(train: Sequence[Comparison], held_out: Sequence[Comparison], out: Path,
                 config: RewardTraining) -> RewardMetrics:
    """Train on `train`, export to `out`, and measure pairwise accuracy on `held_out` with the
    exported adapter reloaded the way the service loads it (with `config.early_stop`, the held-out loss
    also decides when to stop)."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    started = time.perf_counter()
    pairs, ties = preference_pairs(train)
    if not pairs:
        raise ValueError("no comparison with a preference (every one is a tie): nothing to train on")
    tokenizer, model, limit = load_trainable(config, head="reward")

    def ids(comparison: Comparison, summary: str) -> list[int]:
        return reward_input_ids(tokenizer, limit, task_prompt(comparison.task, comparison.input), summary)

    def rows(examples: list[tuple[Comparison, str, str]]) -> Dataset:
        return Dataset.from_list([{"chosen_ids": ids(c, chosen), "rejected_ids": ids(c, rejected)}
                                  for c, chosen, rejected in examples])

    dataset = rows(pairs)
    held = preference_pairs(held_out)[0] if config.early_stop else []
    _, result = run_trainer(RewardTrainer, RewardConfig, config, model, dataset, tokenizer, out,
                            eval_dataset=rows(held) if held else None, max_length=None,
                            dataloader_num_workers=0)
    model.eval()
    meta = _reward_meta(model, tokenizer, dataset, limit)
    export_reward_adapter(model, out, meta)
    accuracy, margin = (None, None)
    if held_out:
        accuracy, margin = pairwise_accuracy(out, held_out, config.lora)
    return RewardMetrics(
        train_pairs=len(pairs), held_out_pairs=len(preference_pairs(held_out)[0]), ties_dropped=ties,
        train_loss=float(result.training_loss), held_out_accuracy=accuracy, held_out_margin=margin,
        reward_mean=meta.mean, reward_std=meta.std, seconds=time.perf_counter() - started,
    )


def _reward_meta(model, tokenizer, dataset, max_tokens: int) -> RewardMeta:
    """Mean and spread of raw rewards over (a sample of) the training candidates."""
    rows = dataset.select(range(min(len(dataset), STATS_SAMPLE // 2)))
    sequences = [row[column] for row in rows for column in ("chosen_ids", "rejected_ids")]
    device = next(model.parameters()).device
    raw = []
    with torch.inference_mode():
        for start in range(0, len(sequences), 8):
            batch = tokenizer.pad({"input_ids": sequences[start : start + 8]}, padding_side="right",
                                  return_tensors="pt").to(device)
            raw.extend(model(**batch).logits.squeeze(-1).float().tolist())
    return RewardMeta(max_tokens=max_tokens, mean=statistics.fmean(raw), std=statistics.pstdev(raw) or 1.0)


def export_reward_adapter(model, out: Path, meta: RewardMeta) -> None:
    """Save the classifier's LoRA as a causal-LM adapter and its score layer as the reward head."""
    from safetensors.torch import load_file, save_file

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    weights = load_file(str(out / "adapter_model.safetensors"))
    head = [name for name in weights if ".score." in name]
    if len(head) != 1:
        raise RuntimeError(f"expected one score weight in the saved adapter, found {head}")
    RewardHead(weights.pop(head[0]), meta).save(out)
    save_file(weights, str(out / "adapter_model.safetensors"))
    config_path = out / "adapter_config.json"
    adapter_config = json.loads(config_path.read_text())
    adapter_config |= {"task_type": "CAUSAL_LM", "modules_to_save": None}
    config_path.write_text(json.dumps(adapter_config, indent=2))


def pairwise_accuracy(adapter: Path, comparisons: Sequence[Comparison],
                      lora: LoraSettings) -> tuple[float, float]:
    """Share of non-tie comparisons where the preferred candidate scores higher, and the mean margin,
    with the adapter loaded by the serving runtime."""
    pairs, _ = preference_pairs(comparisons)
    runtime = load_runtime(ModelSpec(base=lora.base, quantization=lora.quantization,
                                     adapters={"reward": str(adapter)}, bundle=NO_BUNDLE))
    prompts = [task_prompt(c.task, c.input) for c, _, _ in pairs]
    chosen = score_pairs(runtime, prompts, [chosen for _, chosen, _ in pairs])
    rejected = score_pairs(runtime, prompts, [rejected for _, _, rejected in pairs])
    margins = [a - b for a, b in zip(chosen, rejected, strict=True)]
    return sum(m > 0 for m in margins) / len(margins), statistics.fmean(margins)
