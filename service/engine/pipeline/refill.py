"""Continuous ("refill") batching: a row that ends is replaced by a waiting request at the next step.

A static batch (generate.py) runs until its longest row ends while finished rows idle. Here every decoding
step feeds only rows still generating, and free rows are filled from a queue the caller may keep topping up
(`refill`), so a merge node can start as soon as its children are done. transformers' own continuous
batching (`generate_batch`) drops the repetition penalty and breaks on no-repeat n-grams, which small models
need (results.py), so the loop keeps its own key/value cache: newcomers are prefilled left-padded and
spliced into the running cache, ended rows are cut out of it.

Rows may carry different LoRA adapters (a leaf's `chunk` adapter beside a merge on the base model): peft
applies each row's own adapter in one forward pass (`adapter_names`), so a merge never waits for a batch
of another role to drain.
"""

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import (
    DynamicCache,
    LogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
)
from transformers.cache_utils import DynamicLayer

from recursum.service.engine.errors import ConfigError
from recursum.service.engine.models.runtime import ModelRuntime
from recursum.service.engine.pipeline.generate import _strip_after_eos, fit_prompt, printable
from recursum.service.engine.pipeline.results import (
    BatchRecord,
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    GenerationStats,
)
from recursum.service.engine.pipeline.scheduler import BatchHooks

_Fitted = tuple[GenerationRequest, list[int], bool]  # request, prompt ids fitted to the window, truncated


@dataclass
class _Segment:
    """The work since one admission: what a BatchRecord reports when the next admission (or the end) comes."""

    sequences: int
    prompt_tokens: int
    padded_tokens: int
    truncated: int
    prefill_seconds: float
    rows: int  # rows running once these were admitted
    generated_tokens: int = 0
    decode_steps: int = 0
    decode_seconds: float = 0.0


@dataclass
class _Row:
    request: GenerationRequest
    prompt_tokens: int
    truncated: bool
    tokens: torch.Tensor  # (1, prompt + max_new_tokens): this row's own ids, unpadded, filled up to `length`
    length: int

    @property
    def generated(self) -> list[int]:
        return self.tokens[0, self.prompt_tokens : self.length].tolist()


@dataclass
class _RunningBatch:
    """The rows in flight and their shared cache; row i is row i of every cache tensor and of `mask`."""

    runtime: ModelRuntime
    settings: GenerationSettings
    processors: list[LogitsProcessor]
    stop_tokens: set[int]
    rows: list[_Row] = field(default_factory=list)
    cache: DynamicCache | None = None
    mask: torch.Tensor | None = None  # (rows, cached columns): 0 where a row is left-padded

    def _adapters(self, rows: list[GenerationRequest]) -> dict[str, list[str]]:
        """peft's per-row adapters (`__base__`: none), where the runtime carries any."""
        if not self.runtime.mixes_adapters:
            return {}
        return {"adapter_names": [request.adapter or "__base__" for request in rows]}

    def admit(self, fitted: list[_Fitted]) -> tuple[_Segment, list[_Row]]:
        """Prefill `fitted` as one left-padded batch, pick each one's first token and splice it in.

        Returns the segment these open and the rows that already ended at their first token."""
        started = time.perf_counter()
        runtime, device = self.runtime, self.runtime.device
        padded = runtime.tokenizer.pad({"input_ids": [ids for _, ids, _ in fitted]}, return_tensors="pt")
        input_ids = padded["input_ids"].to(device)  # (newcomers, longest prompt), left-padded
        mask = padded["attention_mask"].to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # each row counts from its own first token
        output = runtime.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                               use_cache=True, logits_to_keep=1,
                               **self._adapters([request for request, _, _ in fitted]))
        newcomers = [_Row(request, len(ids), truncated,
                          torch.tensor([ids + [0] * self.settings.max_new_tokens], device=device), len(ids))
                     for request, ids, truncated in fitted]
        ended = self._choose(newcomers, output.logits[:, -1, :])
        self._splice(newcomers, output.cache, mask)
        segment = _Segment(sequences=len(fitted), prompt_tokens=sum(len(ids) for _, ids, _ in fitted),
                           padded_tokens=input_ids.numel(), truncated=sum(t for _, _, t in fitted),
                           prefill_seconds=time.perf_counter() - started, rows=len(self.rows))
        return segment, ended

    def step(self) -> list[_Row]:
        """One decoding step for every row; returns the rows that ended."""
        device = self.runtime.device
        input_ids = torch.stack([row.tokens[0, row.length - 1] for row in self.rows]).view(-1, 1)
        positions = torch.tensor([[row.length - 1] for row in self.rows], device=device)
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.rows), 1)], dim=1)
        output = self.runtime.model(input_ids=input_ids, attention_mask=self.mask, position_ids=positions,
                                    cache=self.cache, use_cache=True, logits_to_keep=1,
                                    **self._adapters([row.request for row in self.rows]))
        return self._choose(self.rows, output.logits[:, -1, :])

    def drop(self, leaving: Iterable[_Row]) -> None:
        """Cut rows out of the batch and its cache, then the columns that are padding for every row left."""
        gone = {id(row) for row in leaving}
        keep = [i for i, row in enumerate(self.rows) if id(row) not in gone]
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self.reset()
            return
        index = torch.tensor(keep, device=self.mask.device)
        self.mask = self.mask[index]
        first = int(self.mask.any(dim=0).int().argmax())  # the first column some row still attends to
        self.mask = self.mask[:, first:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, first:]
            layer.values = layer.values[index, :, first:]

    def reset(self) -> None:
        self.rows, self.cache, self.mask = [], None, None

    def _choose(self, rows: list[_Row], logits: torch.Tensor) -> list[_Row]:
        """Append each row's next token, processed on that row's own history as a batch-1 generate would."""
        scores = logits.float()  # (rows, vocab)
        processed = []
        for i, row in enumerate(rows):
            row_scores = scores[i : i + 1]
            history = row.tokens[:, : row.length]
            for processor in self.processors:
                row_scores = processor(history, row_scores)
            processed.append(row_scores)
        scores = torch.cat(processed)
        if self.settings.temperature > 0:
            chosen = torch.multinomial(torch.softmax(scores / self.settings.temperature, dim=-1), 1).view(-1)
        else:
            chosen = scores.argmax(dim=-1)
        ended = []
        for row, token in zip(rows, chosen.tolist(), strict=True):
            row.tokens[0, row.length] = token
            row.length += 1
            if token in self.stop_tokens or row.length - row.prompt_tokens == self.settings.max_new_tokens:
                ended.append(row)
        return ended

    def _splice(self, newcomers: list[_Row], cache: DynamicCache, mask: torch.Tensor) -> None:
        """Join the newcomers' cache to the running one, left-padding whichever is shorter."""
        if any(type(layer) is not DynamicLayer for layer in cache.layers):
            raise ConfigError("refill batching needs a model whose cache is plain full attention (no sliding "
                              "window or linear layers); use static batching for this model")
        self.rows += newcomers
        if self.cache is None:
            self.cache, self.mask = cache, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])
        self.mask = torch.cat([_left_pad(self.mask, width), _left_pad(mask, width)])
        for running, joining in zip(self.cache.layers, cache.layers, strict=True):
            running.keys = torch.cat([_left_pad(running.keys, width), _left_pad(joining.keys, width)])
            running.values = torch.cat([_left_pad(running.values, width), _left_pad(joining.values, width)])


def _left_pad(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Zeros before the sequence axis (a mask's last, a key/value tensor's third) up to `width`."""
    axis = -1 if tensor.dim() == 2 else -2
    missing = width - tensor.shape[axis]
    if missing == 0:
        return tensor
    return F.pad(tensor, (missing, 0) if axis == -1 else (0, 0, missing, 0))


def generate_refilling(
    runtime: ModelRuntime,
    first: Sequence[GenerationRequest],
    settings: GenerationSettings,
    batch_size: int,
    stats: GenerationStats | None = None,
    on_result: Callable[[GenerationResult], None] | None = None,
    wanted: Callable[[str], bool] | None = None,
    on_failure: Callable[[list[str], Exception], None] | None = None,
    refill: Callable[[int], Sequence[GenerationRequest]] | None = None,
) -> None:
    """Generate `first` and whatever `refill(n)` hands over while rows are free, in one continuous batch.

    Each request runs with its own adapter. At most `batch_size` rows run,
    fewer where the runtime's memory budget says so. Each result goes to `on_result` as its row ends; a row
    whose key `wanted` rejects is dropped at the next step without a result. A step that raises fails the
    rows in flight (`on_failure`, else the error propagates) and the loop goes on with the rest; running out
    of memory instead puts them back in the queue and halves the rows allowed.
    """
    wanted = wanted or (lambda key: True)
    stats = stats if stats is not None else GenerationStats()
    batch = _RunningBatch(runtime, settings, _processors(settings), _stop_tokens(runtime))
    waiting: deque[_Fitted] = deque(_fit(runtime, first, settings))
    limit = batch_size
    segment: _Segment | None = None
    torch.manual_seed(settings.seed)
    with torch.inference_mode():
        while True:
            batch.drop([row for row in batch.rows if not wanted(row.request.key)])
            free = limit - len(batch.rows) - len(waiting)
            if refill is not None and free > 0:
                waiting.extend(_fit(runtime, refill(free), settings))
            newcomers = _admissible(waiting, batch.rows, limit, runtime, settings, wanted)
            if not newcomers and not batch.rows:
                break
            ended: list[_Row] = []
            try:
                if newcomers:
                    opened, ended = batch.admit(newcomers)
                    newcomers = []
                    _close(segment, runtime, settings, stats)
                    segment = opened
                    batch.drop(ended)
                if batch.rows:
                    started = time.perf_counter()
                    stepped = batch.step()
                    segment.decode_steps += 1
                    segment.decode_seconds += time.perf_counter() - started
                    batch.drop(stepped)
                    ended += stepped
            except Exception as error:
                in_flight = [(row.request, row.tokens[0, : row.prompt_tokens].tolist(), row.truncated)
                             for row in batch.rows] + newcomers
                batch.reset()
                if isinstance(error, torch.OutOfMemoryError) and len(in_flight) > 1:
                    limit = max(1, len(in_flight) // 2)  # the memory estimate was wrong for this device
                    waiting.extendleft(reversed(in_flight))
                elif on_failure is None:
                    raise
                else:
                    on_failure([request.key for request, _, _ in in_flight], error)
            for row in ended:
                if wanted(row.request.key):
                    result = _result(runtime, row)
                    segment.generated_tokens += result.generated_tokens
                    if on_result is not None:
                        on_result(result)
    _close(segment, runtime, settings, stats)


def generate_scheduled(runtime: ModelRuntime, first: Sequence[GenerationRequest],
                       settings: GenerationSettings, batch_size: int, stats: GenerationStats | None,
                       hooks: BatchHooks) -> None:
    """A `Scheduler`'s batch: one continuous batch, refilled by the scheduler."""
    generate_refilling(runtime, first, settings, batch_size, stats, on_result=hooks.on_result,
                       wanted=hooks.wanted, on_failure=hooks.on_failure, refill=hooks.refill)


def _fit(runtime: ModelRuntime, requests: Iterable[GenerationRequest],
         settings: GenerationSettings) -> list[_Fitted]:
    return [(request, *fit_prompt(runtime, request.prompt, settings.max_new_tokens)) for request in requests]


def _admissible(waiting: deque[_Fitted], rows: list[_Row], limit: int, runtime: ModelRuntime,
                settings: GenerationSettings, wanted: Callable[[str], bool]) -> list[_Fitted]:
    """Wanted requests from the front of `waiting` while the batch has rows free and the memory budget,
    priced at the longest prompt in it, still fits them."""
    admitted: list[_Fitted] = []
    longest = max((row.prompt_tokens for row in rows), default=0)
    while waiting and len(rows) + len(admitted) < limit:
        request, ids, truncated = waiting[0]
        if not wanted(request.key):
            waiting.popleft()
            continue
        longest = max(longest, len(ids))
        if len(rows) + len(admitted) >= runtime.batch_memory.rows_that_fit(longest, settings.max_new_tokens):
            break
        admitted.append(waiting.popleft())
    return admitted


def _processors(settings: GenerationSettings) -> list[LogitsProcessor]:
    """The processors `model.generate` builds for these settings (before any sampling warper)."""
    processors: list[LogitsProcessor] = []
    if settings.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
    if settings.no_repeat_ngram_size > 0:
        processors.append(NoRepeatNGramLogitsProcessor(settings.no_repeat_ngram_size))
    return processors


def _stop_tokens(runtime: ModelRuntime) -> set[int]:
    """Where `generate` stops (the model's eos ids) and where the static path cuts (the tokenizer's)."""
    eos = runtime.model.generation_config.eos_token_id
    configured = set(eos) if isinstance(eos, list) else {eos}
    return (configured | {runtime.tokenizer.eos_token_id, runtime.tokenizer.pad_token_id}) - {None}


def _result(runtime: ModelRuntime, row: _Row) -> GenerationResult:
    generated = _strip_after_eos(row.generated, runtime.tokenizer)
    return GenerationResult(key=row.request.key,
                            text=printable(runtime.tokenizer.decode(generated, skip_special_tokens=True)),
                            prompt_tokens=row.prompt_tokens, generated_tokens=len(generated),
                            truncated=row.truncated)


def _close(segment: _Segment | None, runtime: ModelRuntime, settings: GenerationSettings,
           stats: GenerationStats) -> None:
    """Count a finished segment into `stats` and tell the runtime's listener."""
    if segment is None:
        return
    stats.batches += 1
    stats.sequences += segment.sequences
    stats.prompt_tokens += segment.prompt_tokens
    stats.padded_tokens += segment.padded_tokens
    stats.generated_tokens += segment.generated_tokens
    stats.prefill_seconds += segment.prefill_seconds
    stats.decode_seconds += segment.decode_seconds
    stats.batch_sizes.append(segment.rows)
    if runtime.on_batch is not None:
        runtime.on_batch(BatchRecord(
            sequences=segment.sequences, prompt_tokens=segment.prompt_tokens,
            generated_tokens=segment.generated_tokens, decode_steps=segment.decode_steps,
            prefill_seconds=segment.prefill_seconds, decode_seconds=segment.decode_seconds,
            truncated=segment.truncated, max_new_tokens=settings.max_new_tokens))
