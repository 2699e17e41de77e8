"""Summary quality on SQuALITY: ROUGE against 4 human plot summaries per story, and what the tree says.

Besides ROUGE, the meters a reader would apply, per run:
- character recall: share of the story's 5 most mentioned names that the root mentions in a sentence
  telling something about them (a bare list does not count); human summaries reach about 0.7;
- name precision: share of the root's names that occur in the story;
- meta-commentary rate per height: share of sentences about the text, the passage or the summarizing;
- unsupported share per height against the source (composed down the tree): the compounding-error meter;
- root words, and seconds per story.
`--langchain` also runs the naive LangChain-style map-reduce on the same chunks; `--book FILE` measures a
whole book of ../shared/data/books (no references: the content meters and the time).

    python bench/quality.py                       # all 25 dev stories
    python bench/quality.py --stories 5           # a quick run
    python bench/quality.py --split train         # tuning happens on train; dev is for reporting
    python bench/quality.py --book alice_in_wonderland.txt
    python bench/quality.py --config both         # before/after the issue-15 controls, in one run
    python bench/quality.py --adapters DIR        # an adapter bundle instead of the bare model
    python bench/quality.py --smoke               # the start of one story, both systems (CI)
"""

import argparse
import json
import re
import statistics
import time
from collections import defaultdict

import msgspec
from _data import shared_path
from _naive_mapreduce import NaiveMapReduce
from _smoke import add_smoke_flag, apply_smoke
from rouge_score import rouge_scorer

from recursum.service.engine.models.model_store import pull_default_model
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import NO_BUNDLE, ModelSpec
from recursum.service.engine.pipeline.commentary import is_meta_commentary
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.service.engine.pipeline.node_cache import MemoryNodeCache
from recursum.service.engine.pipeline.recursion import Summarizer
from recursum.service.engine.pipeline.roster import (
    invented_names,
    names_in_action,
    roster,
    summary_names,
    vocabulary,
)
from recursum.service.engine.pipeline.sentences import split_sentences
from recursum.service.engine.pipeline.tree import Tree, TreeConfig

METRICS = ("rouge1", "rouge2", "rougeL")
PLOT_QUESTION = 1  # "What is the plot of the story?"
LEADING_CHARACTERS = 5
BASELINE = "baseline (bare model, no screen, generated root)"


def load_stories(split: str, limit: int | None) -> list[tuple[str, str, list[str]]]:
    """(title, story, 4 reference plot summaries) from a SQuALITY split."""
    stories = []
    for line in shared_path(f"references/squality/{split}.jsonl").read_text().splitlines():
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


def content(summary: str, story: str) -> dict[str, float]:
    """Character recall, name precision and meta rate of one summary of `story`."""
    leading = roster(story, LEADING_CHARACTERS)
    names = summary_names(summary, frozenset(roster(story)))
    sentences = split_sentences(summary)
    return {
        "character_recall": len(names_in_action(summary, leading)) / len(leading) if leading else 1.0,
        "name_precision": 1 - len(invented_names(summary, vocabulary(story))) / len(names) if names else 1.0,
        "meta_rate": sum(map(is_meta_commentary, sentences)) / len(sentences) if sentences else 0.0,
        "words": len(summary.split()),
    }


def per_height(tree: Tree) -> dict[int, tuple[int, ...]]:
    """Per height: (sentences, meta-commentary sentences, sentences unsupported by the source, generated
    sentences the evidence screen dropped, nodes, extractive nodes)."""
    counts: dict[int, list[int]] = defaultdict(lambda: [0] * 6)
    threshold = tree.config.evidence_threshold
    for node in tree.nodes.values():
        row = counts[node.height]
        for sentence in node.sentences:
            row[0] += 1
            row[1] += is_meta_commentary(sentence.text)
            row[2] += sentence.source_support < threshold
        row[3] += len(node.dropped)
        row[4] += 1
        row[5] += node.extractive
    return {height: tuple(row) for height, row in sorted(counts.items())}


def print_heights(label: str, heights: dict[int, list[int]]) -> None:
    cells = ", ".join(f"h{h} {m / max(1, n):.0%} meta / {u / max(1, n):.0%} unsupported of {n} kept "
                      f"({d} dropped, {e}/{nodes} nodes extractive)"
                      for h, (n, m, u, d, nodes, e) in sorted(heights.items()))
    print(f"{label} per height: {cells}")


def print_content(label: str, rows: list[dict[str, float]], seconds: float, stories: int) -> None:
    def mean(key: str) -> float:
        return statistics.mean(row[key] for row in rows)

    print(f"{label}: character recall {mean('character_recall'):.2f}, name precision "
          f"{mean('name_precision'):.2f}, root meta rate {mean('meta_rate'):.1%}, root words "
          f"{mean('words'):.0f}, {seconds / stories:.0f} s per story")


def report(label: str, rows: list[RougeRow], seconds: float, repeats: list[float]) -> None:
    def average(metric: str, which: int) -> float:
        return statistics.mean(row[metric][which] for row in rows)

    cells = "  ".join(f"{m} best {average(m, 0):.3f} mean {average(m, 1):.3f}" for m in METRICS)
    print(f"{label}: {cells}  repeated-4gram {statistics.mean(repeats):.3f}  ({seconds:.0f} s)")


def add_heights(total: dict[int, list[int]], tree: Tree) -> None:
    for height, counts in per_height(tree).items():
        total.setdefault(height, [0] * len(counts))
        for i, value in enumerate(counts):
            total[height][i] += value


def measure_book(args, label: str, summarizer: Summarizer) -> None:
    text = shared_path(f"books/{args.book}").read_text()[: args.max_chars]
    started = time.perf_counter()
    tree = summarizer.summarize(make_document(text, args.book))
    seconds = time.perf_counter() - started
    heights: dict[int, list[int]] = {}
    add_heights(heights, tree)
    print(f"{args.book}: {len(text):,} chars, {len(tree.chunks)} chunks, heights "
          f"{[len(h) for h in tree.heights]}; leading characters {roster(text, LEADING_CHARACTERS)}")
    print_content(label, [content(tree.root_node.summary, text)], seconds, 1)
    print_heights(label, heights)
    print("root summary:", tree.root_node.summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "train"), default="dev")
    parser.add_argument("--stories", type=int, default=None, help="the first N stories (default: all)")
    parser.add_argument("--book", default=None, help="a whole book of ../shared/data/books instead")
    parser.add_argument("--quantization", default="nf4", choices=["nf4", "int8", "none"])
    parser.add_argument("--show-roots", action="store_true", help="print each story's root summary")
    parser.add_argument("--adapters", default=None,
                        help="an adapter bundle, or none (default: the one shipped with the embedded model)")
    parser.add_argument("--summary-tokens", type=int, default=TreeConfig().summary_tokens)
    parser.add_argument("--langchain", action="store_true", help="also run the naive baseline")
    parser.add_argument("--langchain-tokens", type=int, default=128, help="the baseline's max new tokens")
    parser.add_argument("--max-chars", type=int, default=None, help="summarize only each text's start")
    parser.add_argument("--config", choices=("default", "baseline", "both"), default="default",
                        help="baseline: the bare model, no screen, merging up to one generated root; "
                             "both: the two, sharing generations")
    add_smoke_flag(parser)
    args = apply_smoke(parser.parse_args(), stories=1, book=None, summary_tokens=32, max_chars=2000,
                       langchain=True, langchain_tokens=32, config="both")

    pull_default_model()
    scorer, cache = EvidenceScorer(), MemoryNodeCache()  # one cache: generations are shared where alike
    default = TreeConfig(summary_tokens=args.summary_tokens)
    baseline = msgspec.structs.replace(default, screen=False, root_words=0)
    ours, theirs = {"recursum": (default, args.adapters)}, {BASELINE: (baseline, NO_BUNDLE)}
    configs = {"default": ours, "baseline": theirs, "both": theirs | ours}[args.config]
    runtimes = {bundle: load_runtime(ModelSpec(quantization=args.quantization, bundle=bundle))
                for _, bundle in configs.values()}
    summarizers = {label: Summarizer(runtimes[bundle], scorer, config, cache)
                   for label, (config, bundle) in configs.items()}
    if args.book:
        for label, summarizer in summarizers.items():
            measure_book(args, label, summarizer)
        return
    stories = load_stories(args.split, args.stories)
    naive = NaiveMapReduce() if args.langchain else None
    for label, summarizer in summarizers.items():
        measure_stories(args, label, summarizer, stories, naive)


def measure_stories(args, label: str, summarizer: Summarizer, stories: list[tuple[str, str, list[str]]],
                    naive: NaiveMapReduce | None) -> None:
    scorer = rouge_scorer.RougeScorer(list(METRICS), use_stemmer=True)

    ours, theirs, our_repeats, their_repeats = [], [], [], []
    our_content, their_content, references_content = [], [], []
    heights: dict[int, list[int]] = {}
    our_seconds = 0.0
    for title, story, references in stories:
        story = story[: args.max_chars]
        started = time.perf_counter()
        tree = summarizer.summarize(make_document(story, title))
        our_seconds += time.perf_counter() - started
        summary = tree.root_node.summary
        ours.append(rouge(scorer, summary, references))
        our_repeats.append(repetition(summary))
        our_content.append(content(summary, story))
        references_content.extend(content(reference, story) for reference in references)
        add_heights(heights, tree)
        print(f"- {label}, {title}: {len(tree.chunks)} chunks, heights {[len(h) for h in tree.heights]}, "
              f"R1 best {ours[-1]['rouge1'][0]:.3f}, characters {roster(story, LEADING_CHARACTERS)}, "
              f"root names {summary_names(summary, frozenset(roster(story)))}")
        if args.show_roots:
            print(f"  root: {summary}")
        if naive is not None and label == "recursum":
            chunks = [tree.nodes[i] for i in tree.heights[0]]
            passages = [story[c.span.start : c.span.end] for c in chunks]
            baseline = naive.summarize(passages, args.langchain_tokens)
            theirs.append(rouge(scorer, baseline, references))
            their_repeats.append(repetition(baseline))
            their_content.append(content(baseline, story))

    print(f"\nSQuALITY {args.split}, {len(stories)} stories, plot question, 4 references each "
          f"(human vs human ROUGE-1 is about 0.50)")
    report(f"{label} ({args.quantization})", ours, our_seconds, our_repeats)
    print_content(label, our_content, our_seconds, len(stories))
    print_heights(label, heights)
    if theirs:
        report("naive LangChain-style map-reduce (fp32, batch 1)", theirs, naive.seconds, their_repeats)
        print_content("naive map-reduce", their_content, naive.seconds, len(stories))
    print_content("human references", references_content, 0.0, len(stories))


if __name__ == "__main__":
    main()
