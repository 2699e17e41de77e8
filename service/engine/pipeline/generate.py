"""Batched generation: a whole height goes through the model in a few left-padded batches.

Requests are grouped by adapter, sorted by prompt length (so a batch pads little) and cut into
batches of `batch_size`. Every prompt is fitted to the model's context window with the model's
own tokenizer before it is batched, whatever the chunk settings were.
"""

import re
import time
from collections.abc import Callable, Sequence
from itertools import groupby

import msgspec
import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from recursum.service.engine.errors import ConfigError
from recursum.service.engine.models.runtime import ModelRuntime
from recursum.service.engine.pipeline.prompts import PromptInput, render_messages
from recursum.service.engine.pipeline.results import (
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    GenerationStats,
)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MIN_INPUT_TOKENS = 64  # the least input a prompt must be able to hold beside the summary


class _FirstStepClock(LogitsProcessor):
    """Records when the first logits arrive: the end of prefill for this batch."""

    def __init__(self) -> None:
        self.first_step: float | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.first_step is None:
            self.first_step = time.perf_counter()
        return scores


class _StopWhenUnwanted(StoppingCriteria):
    """Ends a batch early once no request in it is wanted any more (checked every decoding step)."""

    def __init__(self, keys: list[str], wanted: Callable[[str], bool]) -> None:
        self.keys = keys
        self.wanted = wanted

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> bool:
        return not any(self.wanted(key) for key in self.keys)


def printable(text: str) -> str:
    """Generated text without control characters (line breaks and tabs stay): a byte-level tokenizer can
    decode a NUL, which PostgreSQL refuses to store, failing the whole batch's jobs."""
    return _CONTROL.sub("", text).strip()


def fit_prompt(runtime: ModelRuntime, prompt: PromptInput, max_new_tokens: int) -> tuple[list[int], bool]:
    """Token ids of the chat-formatted prompt, trimmed to leave room for `max_new_tokens`.

    Returns the ids and whether anything was cut.
    """
    _, ids, truncated = fit_prompt_input(runtime.tokenizer, runtime.context_window, prompt, max_new_tokens)
    return ids, truncated


def fit_prompt_input(tokenizer, window: int, prompt: PromptInput,
                     reserve: int) -> tuple[PromptInput, list[int], bool]:
    """`prompt` trimmed until its chat-formatted ids leave `reserve` of `window` tokens free.

    Trims the optional context first (from its start: the text nearest the passage matters
    most), then the passage (from its end). Returns the fitted prompt, its ids and whether
    anything was cut.
    """
    limit = window - reserve
    if limit < MIN_INPUT_TOKENS:
        raise ConfigError(
            f"summary length {reserve} tokens leaves no room for input in the model's "
            f"{window}-token context window; lower the summary length"
        )
    truncated = False
    while True:
        ids = render_prompt_ids(tokenizer, prompt)
        overflow = len(ids) - limit
        if overflow <= 0:
            return prompt, ids, truncated
        truncated = True
        field = "context" if prompt.context else "passage"
        if not getattr(prompt, field):
            raise ConfigError(
                f"the prompt template alone needs {len(ids)} tokens, more than the {limit} the "
                f"{window}-token window leaves beside the summary; lower the summary length"
            )
        tokens = tokenizer.encode(getattr(prompt, field), add_special_tokens=False)
        keep = max(0, len(tokens) - overflow - 8)
        kept = tokens[len(tokens) - keep :] if field == "context" else tokens[:keep]
        prompt = msgspec.structs.replace(prompt, **{field: tokenizer.decode(kept)})


def render_prompt_ids(tokenizer, prompt: PromptInput) -> list[int]:
    """The prompt as the model sees it: chat template applied, ready for the assistant turn."""
    return list(
        tokenizer.apply_chat_template(
            render_messages(prompt), add_generation_prompt=True, tokenize=True, return_dict=False
        )
    )


def generate_batched(
    runtime: ModelRuntime,
    requests: Sequence[GenerationRequest],
    settings: GenerationSettings,
    batch_size: int,
    stats: GenerationStats | None = None,
    on_result: Callable[[GenerationResult], None] | None = None,
    wanted: Callable[[str], bool] | None = None,
) -> list[GenerationResult]:
    """Generate every request; results come back in request order.

    `on_result` is called as each batch finishes (progress, incremental commits). `wanted(key)`
    lets a caller withdraw requests (a cancelled job): withdrawn ones are skipped at the next
    batch, a batch none of whose requests is wanted stops at the next decoding step, and
    withdrawn requests are left out of the result.
    """
    wanted = wanted or (lambda key: True)
    stats = stats if stats is not None else GenerationStats()
    fitted = [(request, *fit_prompt(runtime, request.prompt, settings.max_new_tokens))
              for request in requests]
    ordered = sorted(fitted, key=lambda item: (item[0].adapter or "", len(item[1])))
    results: dict[str, GenerationResult] = {}
    for adapter, group in groupby(ordered, key=lambda item: item[0].adapter):
        items = list(group)
        with runtime.using(adapter):
            for start in range(0, len(items), batch_size):
                batch = [item for item in items[start : start + batch_size] if wanted(item[0].key)]
                if not batch:
                    continue
                for result in _generate_one_batch(runtime, batch, settings, stats, wanted):
                    results[result.key] = result
                    if on_result is not None:
                        on_result(result)
    return [results[request.key] for request in requests if request.key in results]


def _generate_one_batch(runtime, batch, settings, stats, wanted) -> list[GenerationResult]:
    tokenizer = runtime.tokenizer
    padded = tokenizer.pad({"input_ids": [ids for _, ids, _ in batch]}, return_tensors="pt")
    input_ids = padded["input_ids"].to(runtime.device)  # (batch, longest prompt), left-padded
    attention_mask = padded["attention_mask"].to(runtime.device)
    clock = _FirstStepClock()
    stopping = _StopWhenUnwanted([request.key for request, _, _ in batch], wanted)
    torch.manual_seed(settings.seed)
    started = time.perf_counter()
    with torch.inference_mode():
        output = runtime.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.temperature > 0,
            temperature=settings.temperature if settings.temperature > 0 else None,
            top_p=None,
            top_k=None,
            repetition_penalty=settings.repetition_penalty,
            no_repeat_ngram_size=settings.no_repeat_ngram_size,
            pad_token_id=tokenizer.pad_token_id,
            logits_processor=LogitsProcessorList([clock]),
            stopping_criteria=StoppingCriteriaList([stopping]),
        )
    finished = time.perf_counter()
    new_tokens = output[:, input_ids.shape[1] :]  # (batch, generated)
    results = []
    for (request, ids, truncated), row in zip(batch, new_tokens, strict=True):
        if not wanted(request.key):
            continue
        generated = _strip_after_eos(row.tolist(), tokenizer)
        results.append(GenerationResult(
            key=request.key,
            text=printable(tokenizer.decode(generated, skip_special_tokens=True)),
            prompt_tokens=len(ids),
            generated_tokens=len(generated),
            truncated=truncated,
        ))
    first_step = clock.first_step or finished
    stats.batches += 1
    stats.sequences += len(batch)
    stats.prompt_tokens += sum(len(ids) for _, ids, _ in batch)
    stats.padded_tokens += input_ids.numel()
    stats.generated_tokens += sum(r.generated_tokens for r in results)
    stats.prefill_seconds += first_step - started
    stats.decode_seconds += finished - first_step
    stats.batch_sizes.append(len(batch))
    stats.batch_seconds.append(finished - started)
    return results


def _strip_after_eos(tokens: list[int], tokenizer) -> list[int]:
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    for position, token in enumerate(tokens):
        if token in eos:
            return tokens[:position]
    return tokens
