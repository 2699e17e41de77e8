"""Reward model training on a tiny model: it learns an easy preference, and the exported adapter
scores the same when the service's runtime reloads it; best-of-n then picks by that score."""

from pathlib import Path

import pytest
import torch

from recursum.service.engine.models.reward import reward_input_ids, score_pairs
from recursum.service.engine.models.reward_head import REWARD_HEAD_FILE, RewardHead
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.service.engine.pipeline.prompts import task_prompt
from recursum.service.engine.pipeline.recursion import Summarizer
from recursum.service.engine.pipeline.tree import TreeConfig
from recursum.training.datasets import Comparison, now
from recursum.training.modeling import LoraSettings
from recursum.training.reward import RewardTraining, train_reward

pytestmark = pytest.mark.integration  # every test trains, or uses the trained fixture

GOOD = "Alice was tired of sitting by her sister. " * 2
BAD = "Victor built a creature and fled. " * 2
PASSAGE = "The Rabbit took a watch out of its pocket. " * 3


def easy_comparison(index: int) -> Comparison:
    """The candidate about Alice is always preferred; its position alternates."""
    good_first = index % 2 == 0
    return Comparison(id=f"c{index}", task="chunk", height=0, input=PASSAGE, group=f"story-{index % 5}",
                      candidates=(GOOD, BAD) if good_first else (BAD, GOOD),
                      preferred=0 if good_first else 1, evaluator="simulated:test", created=now())


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("reward")
    data = [easy_comparison(i) for i in range(40)]
    config = RewardTraining(lora=LoraSettings(base=str(tiny_model_dir), quantization="none"),
                            epochs=3, learning_rate=5e-3)
    return out, train_reward(data[:32], data[32:], out, config)


def test_reward_model_learns_an_easy_preference_on_held_out_pairs(trained):
    _, metrics = trained
    assert metrics.train_pairs == 32 and metrics.held_out_pairs == 8
    assert metrics.held_out_accuracy == 1.0 and metrics.held_out_margin > 0


def test_qlora_reward_training_on_the_nf4_base_updates_lora_and_head(tiny_model_dir, tmp_path):
    """TRL turns a quantized model's trainable weights to bf16 while the base's norms stay fp32: the score
    head must still accept the hidden states (it once failed with mismatched dtypes)."""
    from safetensors.torch import load_file

    config = RewardTraining(lora=LoraSettings(base=str(tiny_model_dir), quantization="nf4"), max_steps=2,
                            learning_rate=5e-3)
    metrics = train_reward([easy_comparison(i) for i in range(8)], [], tmp_path, config)
    assert metrics.train_pairs == 8 and torch.isfinite(torch.tensor(metrics.train_loss))
    lora_b = [w for name, w in load_file(str(tmp_path / "adapter_model.safetensors")).items()
              if "lora_B" in name]
    assert lora_b and any(w.abs().sum() > 0 for w in lora_b)  # LoRA B starts at zero: a step moved it
    assert torch.isfinite(RewardHead.load(tmp_path).weight).all()


def test_exported_adapter_carries_its_head_and_normalisation(trained):
    out, metrics = trained
    head = RewardHead.load(out)
    assert (out / REWARD_HEAD_FILE).is_file() and head.weight.shape[0] == 1
    assert head.meta.mean == pytest.approx(metrics.reward_mean) and head.meta.std > 0
    assert '"CAUSAL_LM"' in (out / "adapter_config.json").read_text()


def test_reloaded_reward_adapter_reproduces_the_classifier_scores(trained, tiny_model_dir):
    """The service scores on its causal LM; training's sequence classifier must agree."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    out, _ = trained
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", dtype="float32",
                                     adapters={"reward": str(out)}))
    served = score_pairs(runtime, [task_prompt("chunk", PASSAGE)] * 2, [GOOD, BAD])

    # The training-side computation: a sequence classifier with the adapted backbone and the head.
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(out))
    classifier = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).eval()
    classifier.model.load_state_dict(adapted.merge_and_unload().model.state_dict())
    head = RewardHead.load(out)
    classifier.score.weight.data = head.weight.clone()
    ids = [reward_input_ids(runtime.tokenizer, head.meta.max_tokens, task_prompt("chunk", PASSAGE), text)
           for text in (GOOD, BAD)]
    with torch.inference_mode():
        raw = [classifier(input_ids=torch.tensor([row])).logits.item() for row in ids]
    expected = [(value - head.meta.mean) / head.meta.std for value in raw]
    assert served == pytest.approx(expected, abs=1e-3)


def test_best_of_n_keeps_the_candidate_the_reward_adapter_scores_highest(trained, tiny_model_dir):
    out, _ = trained
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none",
                                     adapters={"reward": str(out)}))
    config = TreeConfig(chunk_tokens=64, summary_tokens=24, best_of=3)
    tree = Summarizer(runtime, EvidenceScorer(), config).summarize(make_document(PASSAGE * 4))
    scored = [node for node in tree.nodes.values() if node.candidates]
    assert scored, "sampling at temperature 0.8 should give distinct candidates"
    for node in scored:
        assert node.reward is not None
        assert all(node.reward >= candidate.reward for candidate in node.candidates)


def test_a_sample_must_beat_greedy_by_the_margin_to_be_kept(trained, tiny_model_dir):
    out, _ = trained
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none",
                                     adapters={"reward": str(out)}))
    config = TreeConfig(chunk_tokens=64, summary_tokens=24, best_of=3, best_of_margin=10.0)
    tree = Summarizer(runtime, EvidenceScorer(), config).summarize(make_document(PASSAGE * 4))
    candidates = [c for node in tree.nodes.values() for c in node.candidates]
    assert candidates, "sampling at temperature 0.8 should give distinct candidates"
    assert all(c.source != "greedy" for c in candidates)
    assert any(node.candidates for node in tree.nodes.values())
