"""Reward scoring: the base model + the `reward` LoRA + a scalar head, scoring (prompt, summary) pairs.

The reward model shares the one in-memory base model with the generation adapters: its head reads
the causal LM's last hidden state (after the final norm) at the sequence's last non-pad token,
which is exactly what `AutoModelForSequenceClassification` computes, so an adapter trained as a
sequence classifier (TRL's RewardTrainer) scores the same here. The pair is formatted with the
role's generation prompt and the summary as the assistant turn, so train and serve agree.
"""

from collections.abc import Sequence

import torch

from recursum.service.engine.errors import ModelError
from recursum.service.engine.models.reward_head import RewardHead
from recursum.service.engine.pipeline.generate import fit_prompt_input
from recursum.service.engine.pipeline.prompts import PromptInput, render_messages


def reward_input_ids(tokenizer, limit: int, prompt: PromptInput, summary: str) -> list[int]:
    """The chat-formatted (prompt, summary) pair in `limit` tokens: the summary keeps at most half,
    and the prompt's passage is trimmed from its end to fit the rest."""
    answer = tokenizer.encode(summary, add_special_tokens=False)[: limit // 2]
    fitted, _, _ = fit_prompt_input(tokenizer, limit, prompt, len(answer) + 16)
    messages = render_messages(fitted) + [{"role": "assistant", "content": tokenizer.decode(answer)}]
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))[:limit]


def last_token_index(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """Per row, the position of the last non-pad token: the sequence-classification pooling rule
    (pad = eos in many chat models, so this skips a trailing end-of-turn token; train and serve
    use the same rule)."""
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    return (positions * (input_ids != pad_token_id)).argmax(-1)


def score_pairs(runtime, prompts: Sequence[PromptInput], summaries: Sequence[str],
                batch_size: int = 8) -> list[float]:
    """Normalized rewards of each (prompt, summary); needs a runtime loaded with a reward adapter."""
    head: RewardHead | None = runtime.reward_head
    if head is None:
        raise ModelError("no reward adapter is loaded; pass one with --adapter reward=DIR or a bundle")
    tokenizer = runtime.tokenizer
    limit = min(head.meta.max_tokens, runtime.context_window)
    ids = [reward_input_ids(tokenizer, limit, prompt, summary)
           for prompt, summary in zip(prompts, summaries, strict=True)]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    scores = [0.0] * len(ids)
    weight = head.weight.to(runtime.device)
    with runtime.using(runtime.adapter_set.names["reward"]), torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            padded = tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt")
            input_ids = padded["input_ids"].to(runtime.device)  # (batch, longest), left-padded
            attention_mask = padded["attention_mask"].to(runtime.device)
            # Left padding shifts positions; count them from each row's first real token as training did.
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            output = runtime.model(input_ids=input_ids, attention_mask=attention_mask,
                                   position_ids=position_ids, output_hidden_states=True)
            hidden = output.hidden_states[-1]  # (batch, longest, hidden), after the final norm
            pooled = hidden[torch.arange(len(batch)), last_token_index(input_ids, tokenizer.pad_token_id)]
            raw = (pooled.float() @ weight.float().T).squeeze(-1)  # (batch,)
            for row, value in zip(batch, raw.tolist(), strict=True):
                scores[row] = (value - head.meta.mean) / head.meta.std
    return scores
