"""Batched generation: a whole height goes through the model in a few left-padded batches.

Requests are grouped by adapter, sorted by prompt length (so a batch pads little) and cut into
batches of `batch_size` rows at most, fewer where the runtime's memory budget says so. Every prompt is
fitted to the model's context window with the model's own tokenizer before it is batched, whatever the
chunk settings were.
"""

import re
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import groupby

import msgspec
import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from recursum.service.engine.errors import ConfigError
from recursum.service.engine.models.batch_memory import BatchMemory
from recursum.service.engine.models.runtime import ModelRuntime
from recursum.service.engine.pipeline.prompts import PromptInput, render_messages
from recursum.service.engine.pipeline.results import (
    BatchRecord,
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
    on_failure: Callable[[list[str], Exception], None] | None = None,
) -> list[GenerationResult]:
    """Generate every request; results come back in request order.

    A batch holds at most `batch_size` rows and what the runtime's memory budget allows, whatever
    `batch_size` says. `on_result` is called as each batch finishes (progress, incremental commits).
    `wanted(key)` lets a caller withdraw requests (a cancelled job): withdrawn ones are skipped at the
    next batch, a batch none of whose requests is wanted stops at the next decoding step, and withdrawn
    requests are left out of the result. With `on_failure`, a batch that raises fails only its own
    requests (reported with the error) and the other batches still run.
    """
    wanted = wanted or (lambda key: True)
    stats = stats if stats is not None else GenerationStats()
    fitted = [(request, *fit_prompt(runtime, request.prompt, settings.max_new_tokens))
              for request in requests]
    ordered = sorted(fitted, key=lambda item: (item[0].adapter or "", len(item[1])))
    results: dict[str, GenerationResult] = {}
    for adapter, group in groupby(ordered, key=lambda item: item[0].adapter):
        with runtime.using(adapter):
            for batch in _batches(list(group), batch_size, runtime.batch_memory, settings.max_new_tokens,
                                  wanted):
                for result in _generate_isolated(runtime, batch, settings, stats, wanted, on_failure):
                    results[result.key] = result
                    if on_result is not None:
                        on_result(result)
    return [results[request.key] for request in requests if request.key in results]


def _batches(items: list, batch_size: int, memory: BatchMemory, new_tokens: int,
             wanted: Callable[[str], bool]) -> Iterator[list]:
    """Wanted items in order, cut into batches of at most `batch_size` rows that fit `memory` (items are
    sorted by prompt length, so the row just added is the batch's longest)."""
    batch: list = []
    for item in items:
        if not wanted(item[0].key):
            continue
        if batch and (len(batch) == batch_size
                      or len(batch) + 1 > memory.rows_that_fit(len(item[1]), new_tokens)):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _generate_isolated(runtime, batch, settings, stats, wanted, on_failure) -> list[GenerationResult]:
    """One batch; running out of memory splits it in halves (the estimate was wrong for this device),
    and with `on_failure` any other error fails this batch's requests alone."""
    try:
        return _generate_one_batch(runtime, batch, settings, stats, wanted)
    except Exception as error:
        if isinstance(error, torch.OutOfMemoryError) and len(batch) > 1:
            half = len(batch) // 2
            return (_generate_isolated(runtime, batch[:half], settings, stats, wanted, on_failure)
                    + _generate_isolated(runtime, batch[half:], settings, stats, wanted, on_failure))
        if on_failure is None:
            raise
        on_failure([request.key for request, _, _ in batch], error)
        return []


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
    if runtime.on_batch is not None:
        runtime.on_batch(BatchRecord(
            sequences=len(batch), prompt_tokens=sum(len(ids) for _, ids, _ in batch),
            generated_tokens=sum(r.generated_tokens for r in results), decode_steps=new_tokens.shape[1],
            prefill_seconds=first_step - started, decode_seconds=finished - first_step,
            truncated=sum(truncated for _, _, truncated in batch), max_new_tokens=settings.max_new_tokens))
    stats.batches += 1
    stats.sequences += len(batch)
    stats.prompt_tokens += sum(len(ids) for _, ids, _ in batch)
    stats.padded_tokens += input_ids.numel()
    stats.generated_tokens += sum(r.generated_tokens for r in results)
    stats.prefill_seconds += first_step - started
    stats.decode_seconds += finished - first_step
    stats.batch_sizes.append(len(batch))
    return results


def _strip_after_eos(tokens: list[int], tokenizer) -> list[int]:
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    for position, token in enumerate(tokens):
        if token in eos:
            return tokens[:position]
    return tokens
