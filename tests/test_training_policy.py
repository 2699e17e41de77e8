"""SFT and DPO on a tiny model: the loss falls, the adapter's weights change, DPO moves the
log-probability ratio towards the chosen summaries."""

from pathlib import Path

import pytest
import torch

from recursum.training import modeling
from recursum.training.datasets import Comparison, Demonstration, now
from recursum.training.dpo import DpoTraining, train_dpo
from recursum.training.formatting import assistant, prompt_messages
from recursum.training.modeling import LoraSettings
from recursum.training.sft import SftTraining, train_sft

PASSAGE = "The Rabbit took a watch out of its waistcoat pocket and hurried on. " * 2
CHOSEN = "The Rabbit hurried on with a watch."
REJECTED = "Victor built a creature and fled."


def _sequence_logprob(model, tokenizer, prompt, completion) -> float:
    """Summed log-probability of the completion's tokens after the prompt."""
    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                               return_dict=False)
    full = tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=False)
    ids = torch.tensor([full])
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, :-1].float()
    logprobs = logits.log_softmax(-1).gather(-1, ids[0, 1:, None])[:, 0]
    return float(logprobs[len(prompt_ids) - 1 :].sum())


@pytest.mark.integration
def test_sft_loss_falls_and_every_saved_lora_weight_changed(tiny_model_dir, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    initial, trainable_model = {}, modeling.trainable_model

    def snapshot_trainable_model(*args, **kwargs):  # the fresh LoRA, as SFT receives it
        model = trainable_model(*args, **kwargs)
        initial.update({name.replace(".default", ""): weight.detach().clone()
                        for name, weight in model.named_parameters() if weight.requires_grad})
        return model

    monkeypatch.setattr(modeling, "trainable_model", snapshot_trainable_model)
    demos = [Demonstration(task="chunk", height=0, input=PASSAGE, output=CHOSEN, group=f"g{i}",
                           source="test") for i in range(8)]
    config = SftTraining(lora=LoraSettings(base=str(tiny_model_dir), quantization="none"), epochs=4,
                         learning_rate=5e-3)
    metrics = train_sft(demos, tmp_path / "sft", config)
    assert metrics.final_loss < metrics.first_loss
    saved = load_file(str(tmp_path / "sft" / "adapter_model.safetensors"))
    assert saved and saved.keys() == initial.keys()
    unchanged = [name for name, weight in saved.items() if torch.equal(weight, initial[name].to(weight))]
    assert not unchanged, f"SFT left these LoRA weights as initialised: {unchanged}"


@pytest.mark.integration
def test_dpo_moves_the_log_ratio_towards_the_chosen_summary(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pairs = [Comparison(id=f"c{i}", task="chunk", height=0, input=PASSAGE, group=f"g{i}",
                        candidates=(CHOSEN, REJECTED) if i % 2 else (REJECTED, CHOSEN),
                        preferred=0 if i % 2 else 1,
                        evaluator="simulated:test", created=now()) for i in range(8)]
    config = DpoTraining(lora=LoraSettings(base=str(tiny_model_dir), quantization="none"), epochs=3,
                         learning_rate=5e-3, beta=0.1)
    metrics = train_dpo(pairs, tmp_path / "dpo", config)
    assert metrics.pairs == 8 and metrics.reward_margin > 0 and metrics.reward_accuracy > 0.5

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompt = prompt_messages(tokenizer, 512, "chunk", PASSAGE, REJECTED)

    def log_ratio(model) -> float:
        return (_sequence_logprob(model, tokenizer, prompt, assistant(CHOSEN))
                - _sequence_logprob(model, tokenizer, prompt, assistant(REJECTED)))

    before = log_ratio(base)
    policy = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                       str(tmp_path / "dpo")).eval()
    assert log_ratio(policy) > before + 0.5


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_training_refuses_empty_data(method, tiny_model_dir, tmp_path: Path):
    lora = LoraSettings(base=str(tiny_model_dir), quantization="none")
    with pytest.raises(ValueError, match="nothing to train on|no demonstrations"):
        if method == "sft":
            train_sft([], tmp_path, SftTraining(lora=lora))
        else:
            train_dpo([], tmp_path, DpoTraining(lora=lora))
