"""Continuous ("refill") batching against static batches, on the same chunk prompts of a real book.

A static batch (generate_batched) runs until its longest row ends while finished rows idle; the refill loop
(generate_refilling) gives a finished row's place to the next request at the next step. Both decode greedily
with the repetition penalty and n-gram block the service uses, so they write the same tokens up to batch
numerics. transformers' own continuous batching (`model.generate_batch`) runs beside them without those two
processors: it drops the penalty and fails on the n-gram block, so its tokens differ (more of them, often).
Methods run in turn, the order reversed every round, so a busy neighbour on the machine hits each alike.

    python bench/refill.py                      # 24 chunks of Frankenstein, 200 new tokens, batch 8
    python bench/refill.py --requests 48 --rounds 2
    python bench/refill.py --smoke              # 3 short chunks (CI)
"""

import argparse
import time
from collections.abc import Callable

from _data import shared_path
from _smoke import add_smoke_flag, apply_smoke
from transformers import ContinuousBatchingConfig, GenerationConfig

from recursum.service.engine.models.model_store import pull_default_model
from recursum.service.engine.models.runtime import ModelRuntime, load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.chunking import chunk_document
from recursum.service.engine.pipeline.generate import (
    _strip_after_eos,
    fit_prompt,
    generate_batched,
    printable,
)
from recursum.service.engine.pipeline.prompts import chunk_prompt
from recursum.service.engine.pipeline.refill import generate_refilling
from recursum.service.engine.pipeline.results import (
    GenerationRequest,
    GenerationResult,
    GenerationSettings,
    GenerationStats,
)
from recursum.service.engine.pipeline.tree import TreeConfig

Method = Callable[[ModelRuntime, list[GenerationRequest], GenerationSettings, int, GenerationStats],
                  dict[str, GenerationResult]]


def static(runtime, requests, settings, batch_size, stats) -> dict[str, GenerationResult]:
    return {r.key: r for r in generate_batched(runtime, requests, settings, batch_size, stats)}


def refill(runtime, requests, settings, batch_size, stats) -> dict[str, GenerationResult]:
    results: dict[str, GenerationResult] = {}
    generate_refilling(runtime, requests, settings, batch_size, stats,
                       on_result=lambda result: results.__setitem__(result.key, result))
    return results


def transformers_cb(runtime, requests, settings, batch_size, stats) -> dict[str, GenerationResult]:
    """`generate_batch` on the same fitted prompts, at most `batch_size` requests a forward pass."""
    tokenizer = runtime.tokenizer
    fitted = [fit_prompt(runtime, request.prompt, settings.max_new_tokens) for request in requests]
    config = GenerationConfig(max_new_tokens=settings.max_new_tokens, do_sample=False,
                              eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    # No warm-up: a server would pay it once, not per call (about 10 s on this CPU).
    outputs = runtime.model.generate_batch(
        [ids for ids, _ in fitted], generation_config=config, progress_bar=False, warmup=False,
        continuous_batching_config=ContinuousBatchingConfig(max_requests_per_batch=batch_size))
    results = {}
    for request, (ids, truncated), output in zip(requests, fitted, outputs.values(), strict=True):
        generated = _strip_after_eos(list(output.generated_tokens), tokenizer)
        results[request.key] = GenerationResult(
            key=request.key, text=printable(tokenizer.decode(generated, skip_special_tokens=True)),
            prompt_tokens=len(ids), generated_tokens=len(generated), truncated=truncated)
    stats.generated_tokens += sum(r.generated_tokens for r in results.values())
    return results


METHODS: dict[str, Method] = {"static": static, "refill": refill, "transformers": transformers_cb}
LABELS = {"static": "static batches (generate_batched)", "refill": "refill (generate_refilling)",
          "transformers": "transformers generate_batch, no penalties"}


def chunk_requests(book: str, count: int, chunk_tokens: int, adapter: str | None) -> list[GenerationRequest]:
    """The first `count` chunk prompts of `book` past its front matter, as the recursion would build them
    (with the runtime's chunk `adapter`)."""
    text = shared_path(f"books/{book}").read_text()
    text = text[len(text) // 5 :][: count * chunk_tokens * 6]
    chunks = chunk_document(text, chunk_tokens)[:count]
    return [GenerationRequest(key=f"chunk-{c.index}", adapter=adapter,
                              prompt=chunk_prompt(text[c.span.start : c.span.end])) for c in chunks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", default="frankenstein.txt")
    parser.add_argument("--requests", type=int, default=24, help="chunk prompts per method and round")
    parser.add_argument("--chunk-tokens", type=int, default=TreeConfig().chunk_tokens)
    parser.add_argument("--max-new-tokens", type=int, default=TreeConfig().summary_tokens)
    parser.add_argument("--batch-size", type=int, default=TreeConfig().batch_size)
    parser.add_argument("--quantization", default="none", choices=["nf4", "int8", "none"])
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                        help="float32: static and refill write the same text (bf16 rounds by batch shape)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--no-penalties", action="store_true",
                        help="plain greedy for every method: the same work as transformers' loop can do")
    parser.add_argument("--rounds", type=int, default=1, help="each method runs once a round")
    add_smoke_flag(parser)
    args = apply_smoke(parser.parse_args(), requests=3, chunk_tokens=120, max_new_tokens=16, batch_size=2,
                       rounds=1)

    pull_default_model()
    runtime = load_runtime(ModelSpec(quantization=args.quantization, dtype=args.dtype))
    requests = chunk_requests(args.book, args.requests, args.chunk_tokens, runtime.adapter_for("chunk"))
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    if args.no_penalties:
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens, repetition_penalty=1.0,
                                      no_repeat_ngram_size=0)
    prompt_tokens = [len(fit_prompt(runtime, r.prompt, settings.max_new_tokens)[0]) for r in requests]
    print(f"{args.book}: {len(requests)} chunk prompts of {min(prompt_tokens)}-{max(prompt_tokens)} tokens, "
          f"max_new_tokens {settings.max_new_tokens}, batch {args.batch_size}, {args.quantization} "
          f"{runtime.info.dtype} on {runtime.info.device}, {args.rounds} round(s)")

    seconds = dict.fromkeys(args.methods, 0.0)
    stats = {method: GenerationStats() for method in args.methods}
    outputs: dict[str, dict[str, GenerationResult]] = {}
    with runtime.using(runtime.adapter_for("chunk")):
        static(runtime, requests[:1], GenerationSettings(max_new_tokens=2), 1, GenerationStats())  # warm-up
        for round_ in range(args.rounds):
            for method in args.methods if round_ % 2 == 0 else args.methods[::-1]:
                started = time.perf_counter()
                outputs[method] = METHODS[method](runtime, requests, settings, args.batch_size, stats[method])
                seconds[method] += time.perf_counter() - started

    baseline = args.methods[0]
    print(f"{'method':44} {'wall s':>7} {'tokens':>7} {'tok/s':>6} {'prefill s':>9} {'decode s':>8} "
          f"{'vs ' + baseline:>10} {'same text':>9}")
    for method in args.methods:
        tokens = stats[method].generated_tokens
        rate, base_rate = tokens / seconds[method], stats[baseline].generated_tokens / seconds[baseline]
        same = sum(outputs[method][key].text == outputs[baseline][key].text for key in outputs[baseline])
        split = (f"{stats[method].prefill_seconds:9.1f} {stats[method].decode_seconds:8.1f}"
                 if stats[method].batches else f"{'-':>9} {'-':>8}")
        print(f"{LABELS[method]:44} {seconds[method]:7.1f} {tokens:7d} {rate:6.2f} {split} "
              f"{rate / base_rate:9.2f}x {same:4d}/{len(requests)}")


if __name__ == "__main__":
    main()
