"""Summary quality on SQuALITY: ROUGE against 4 human plot summaries per story, and evidence.

No target yet: these figures are the baseline later work (trained adapters, best-of-n) must beat.
`--langchain` also runs the naive LangChain-style map-reduce on the same chunks for comparison.

    python bench/quality.py                 # 5 dev stories
    python bench/quality.py --all           # all 25
    python bench/quality.py --smoke         # the start of one story, both systems (CI)
"""

import argparse
import json
import re
import statistics
import time

from _data import shared_path
from _naive_mapreduce import NaiveMapReduce
from _smoke import add_smoke_flag, apply_smoke
from rouge_score import rouge_scorer

from recursum.service.engine.models.model_store import pull_default_model
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.service.engine.pipeline.recursion import Summarizer
from recursum.service.engine.pipeline.tree import Tree, TreeConfig

METRICS = ("rouge1", "rouge2", "rougeL")
PLOT_QUESTION = 1  # "What is the plot of the story?"


def load_stories(limit: int | None) -> list[tuple[str, str, list[str]]]:
    """(title, story, 4 reference plot summaries) from SQuALITY dev."""
    stories = []
    for line in shared_path("references/squality/dev.jsonl").read_text().splitlines():
        record = json.loads(line)
        plot = next(q for q in record["questions"] if q["question_number"] == PLOT_QUESTION)
        title = f"story {record['metadata']['passage_id']}"
        stories.append((title, record["document"], [r["response_text"] for r in plot["responses"]]))
    return stories[:limit]


RougeRow = dict[str, tuple[float, float]]


def rouge(scorer: rouge_scorer.RougeScorer, summary: str, references: list[str]) -> RougeRow:
    """(best, mean) F1 over the references, per metric."""
    scores = [scorer.score(reference, summary) for reference in references]
    return {m: (max(s[m].fmeasure for s in scores), statistics.mean(s[m].fmeasure for s in scores))
            for m in METRICS}


def repetition(summary: str) -> float:
    """Share of repeated word 4-grams: how far a summary fell into a loop."""
    words = re.findall(r"\w+", summary.lower())
    grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def evidence_figures(tree: Tree) -> dict[str, float]:
    root = tree.root_node.sentences
    every = [s for node in tree.nodes.values() for s in node.sentences]
    return {
        "root_support": statistics.mean(s.support for s in root) if root else 0.0,
        "root_source_support": statistics.mean(s.source_support for s in root) if root else 0.0,
        "all_support": statistics.mean(s.support for s in every) if every else 0.0,
        "unsupported_share": sum(s.unsupported for s in every) / len(every) if every else 0.0,
    }


def report(label: str, rows: list[RougeRow], seconds: float,
           repeats: list[float]) -> None:
    def average(metric: str, which: int) -> float:
        return statistics.mean(row[metric][which] for row in rows)

    cells = "  ".join(f"{m} best {average(m, 0):.3f} mean {average(m, 1):.3f}" for m in METRICS)
    print(f"{label}: {cells}  repeated-4gram {statistics.mean(repeats):.3f}  ({seconds:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="all 25 dev stories")
    parser.add_argument("--quantization", default="nf4", choices=["nf4", "int8", "none"])
    parser.add_argument("--summary-tokens", type=int, default=TreeConfig().summary_tokens)
    parser.add_argument("--langchain", action="store_true", help="also run the naive baseline")
    parser.add_argument("--langchain-tokens", type=int, default=128, help="the baseline's max new tokens")
    parser.add_argument("--max-chars", type=int, default=None, help="summarize only each story's start")
    add_smoke_flag(parser)
    args = apply_smoke(parser.parse_args(), stories=1, all=False, summary_tokens=32, max_chars=2000,
                       langchain=True, langchain_tokens=32)

    pull_default_model()
    stories = load_stories(None if args.all else args.stories)
    runtime = load_runtime(ModelSpec(quantization=args.quantization))
    summarizer = Summarizer(runtime, EvidenceScorer(), TreeConfig(summary_tokens=args.summary_tokens))
    scorer = rouge_scorer.RougeScorer(list(METRICS), use_stemmer=True)
    naive = NaiveMapReduce() if args.langchain else None

    ours, theirs, evidence, our_repeats, their_repeats = [], [], [], [], []
    our_seconds = 0.0
    for title, story, references in stories:
        story = story[: args.max_chars]
        started = time.perf_counter()
        tree = summarizer.summarize(make_document(story, title))
        our_seconds += time.perf_counter() - started
        summary = tree.root_node.summary
        ours.append(rouge(scorer, summary, references))
        our_repeats.append(repetition(summary))
        evidence.append(evidence_figures(tree))
        print(f"- {title}: {len(tree.chunks)} chunks, heights {[len(h) for h in tree.heights]}, "
              f"R1 best {ours[-1]['rouge1'][0]:.3f}")
        if naive is not None:
            chunks = [tree.nodes[i] for i in tree.heights[0]]
            passages = [story[c.span.start : c.span.end] for c in chunks]
            baseline = naive.summarize(passages, args.langchain_tokens)
            theirs.append(rouge(scorer, baseline, references))
            their_repeats.append(repetition(baseline))

    print(f"\nSQuALITY dev, {len(stories)} stories, plot question, 4 references each "
          f"(human vs human ROUGE-1 is about 0.50)")
    report(f"recursum ({args.quantization})", ours, our_seconds, our_repeats)
    if naive is not None:
        report("naive LangChain-style map-reduce (fp32, batch 1)", theirs, naive.seconds,
               their_repeats)
    for key in evidence[0]:
        print(f"evidence {key}: {statistics.mean(e[key] for e in evidence):.3f}")


if __name__ == "__main__":
    main()
