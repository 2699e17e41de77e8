"""What generation produces and a run measures.

Torch-free on purpose: the store, the node cache and the job worker keep and count these without
loading the model stack.
"""

import msgspec

from recursum.service.engine.pipeline.prompts import PromptInput


class GenerationSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Decoding settings; part of every node's content address."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    seed: int = 0
    # Small models fall into loops on long inputs (the LangChain baseline did); these stop it.
    repetition_penalty: float = 1.1
    no_repeat_ngram_size: int = 4


class GenerationRequest(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    adapter: str | None
    prompt: PromptInput


class GenerationResult(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    text: str
    prompt_tokens: int
    generated_tokens: int
    truncated: bool


class GenerationStats(msgspec.Struct, kw_only=True):
    """Where generation time went, for benchmarks and metrics."""

    batches: int = 0
    sequences: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    padded_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    batch_sizes: list[int] = []


class BatchRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One generate call as it finishes: what live metrics count, whichever job or report it served."""

    sequences: int
    prompt_tokens: int
    generated_tokens: int
    decode_steps: int  # the longest output: how many decoding steps the batch ran
    prefill_seconds: float
    decode_seconds: float
    truncated: int  # prompts cut to fit the model's window
    max_new_tokens: int = 0  # the rows' generation limit: how full summaries run (estimates)


class RunStats(msgspec.Struct, kw_only=True):
    """Where a run's time went: generation (prefill/decode inside), evidence, everything."""

    generation: GenerationStats = msgspec.field(default_factory=GenerationStats)
    evidence_seconds: float = 0.0
    total_seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
