"""Speed of the recursion against the naive map-reduce loop a LangChain user would write.

Both run the same model on the same prompts and generate the same number of tokens per call
(the baseline replays our tree's prompts with min = max new tokens), so the ratio measures only
how the work is executed: ours batches each height (length-sorted, left-padded), runs bf16 on
CPUs with AVX-512-BF16 and nf4 weights; the baseline calls generate once per chunk in fp32.

    python bench/summarize.py                    # ~12 chunks of Frankenstein
    python bench/summarize.py --whole-book       # the whole book (long)
    python bench/summarize.py --smoke            # 2 short chunks (CI)
"""

import argparse
import time

import torch
from _data import shared_path
from _naive_mapreduce import NaiveMapReduce
from _smoke import add_smoke_flag, apply_smoke

from recursum.service.engine.models.model_store import pull_default_model
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.service.engine.pipeline.prompts import chunk_prompt, merge_prompt, render_messages
from recursum.service.engine.pipeline.recursion import Summarizer
from recursum.service.engine.pipeline.results import RunStats
from recursum.service.engine.pipeline.tree import Tree, TreeConfig


def replay_prompts(tree: Tree, text: str) -> list[tuple[list[dict[str, str]], int]]:
    """Every node's chat messages and generated-token count, in the order a loop would run."""
    calls = []
    for level in tree.heights:
        for node_id in level:
            node = tree.nodes[node_id]
            prompt = (chunk_prompt(text[node.span.start : node.span.end]) if node.role == "chunk"
                      else merge_prompt([tree.nodes[c].summary for c in node.children]))
            calls.append((render_messages(prompt), node.generated_tokens))
    return calls


def naive_loop(calls, dtype: torch.dtype) -> tuple[float, int]:
    """Replay every call one at a time, forcing the same number of new tokens as ours."""
    naive = NaiveMapReduce(dtype)
    for messages, tokens in calls:
        if tokens:
            naive.generate(messages, max_new_tokens=tokens, min_new_tokens=tokens)
    return naive.seconds, naive.generated_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", default="frankenstein.txt")
    parser.add_argument("--chunks", type=int, default=12, help="excerpt size in chunks")
    parser.add_argument("--whole-book", action="store_true")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--quantization", default="nf4", choices=["nf4", "int8", "none"])
    parser.add_argument("--skip-fp32-baseline", action="store_true",
                        help="only compare against a batch-1 loop in our dtype")
    parser.add_argument("--chunk-tokens", type=int, default=TreeConfig().chunk_tokens)
    parser.add_argument("--summary-tokens", type=int, default=TreeConfig().summary_tokens)
    add_smoke_flag(parser)
    args = apply_smoke(parser.parse_args(), chunks=2, chunk_tokens=120, summary_tokens=16, whole_book=False)

    pull_default_model()
    config = TreeConfig(batch_size=args.batch_size, chunk_tokens=args.chunk_tokens,
                        summary_tokens=args.summary_tokens)
    text = shared_path(f"books/{args.book}").read_text()
    if not args.whole_book:
        start = len(text) // 5  # skip front matter
        text = text[start : start + args.chunks * config.chunk_tokens * 4]
    document = make_document(text, args.book)

    runtime = load_runtime(ModelSpec(quantization=args.quantization))
    scorer = EvidenceScorer()
    scorer.support(["warm up"], ["the embedder"], 1)
    stats = RunStats()
    started = time.perf_counter()
    tree = Summarizer(runtime, scorer, config).summarize(document, stats=stats)
    ours = time.perf_counter() - started
    generation = stats.generation
    tokens = generation.generated_tokens
    other = ours - generation.prefill_seconds - generation.decode_seconds - stats.evidence_seconds

    print(f"document: {args.book}, {len(document.text):,} chars, {len(tree.chunks)} chunks, "
          f"heights {[len(level) for level in tree.heights]}")
    print(f"recursum ({args.quantization}, {runtime.info.dtype}, batch {args.batch_size}): "
          f"{ours:.1f} s, {tokens} generated tokens, {tokens / ours:.1f} tok/s")
    print(f"  prefill {generation.prefill_seconds:.1f} s ({generation.prompt_tokens} prompt tokens,"
          f" {generation.padded_tokens - generation.prompt_tokens} padding), "
          f"decode {generation.decode_seconds:.1f} s, evidence {stats.evidence_seconds:.1f} s, "
          f"chunking+orchestration {other:.1f} s")
    del runtime

    calls = replay_prompts(tree, document.text)
    baselines = [("batch-1 loop, fp32 (what a LangChain user runs)", torch.float32)]
    if args.skip_fp32_baseline:
        baselines = []
    baselines.append((f"batch-1 loop, {tree.model.dtype}", getattr(torch, tree.model.dtype)))
    for label, dtype in baselines:
        seconds, generated = naive_loop(calls, dtype)
        print(f"{label}: {seconds:.1f} s, {generated} generated tokens, "
              f"{generated / seconds:.1f} tok/s -> recursum is {seconds / ours:.2f}x faster")
    print("root summary:", tree.root_node.summary)


if __name__ == "__main__":
    main()
