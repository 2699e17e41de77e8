"""How well does evidence support tell true summary sentences from planted errors?

Data: SQuALITY stories with four human plot summaries each. Candidates are the story's sentences;
positives are the summaries' sentences. Three kinds of planted negatives, one per error a merge
can make:
- foreign: summary sentences of another story (a claim from nowhere);
- swap: a true sentence with one character name replaced by another character of the same story;
- negation: a true sentence with its polarity flipped (see `negate`).
Each sentence's score is its top-1 support; the table gives ROC AUC of true vs each kind per
scoring variant, then the share of each kind that the full scorer flags at several thresholds.
Support settings were tuned on train; dev is the default split for that reason.

    python bench/evidence_auc.py [--split dev|train] [--stories N | --all] [--smoke]
"""

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from _smoke import add_smoke_flag, apply_smoke

from recursum.service.engine.pipeline.evidence import DEFAULT_THRESHOLD, EvidenceScorer, SupportConfig
from recursum.service.engine.pipeline.planting import KINDS, characters, negate, swap_name
from recursum.service.engine.pipeline.sentences import split_sentences

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SQUALITY = DATA / "references" / "squality"
PLOT_QUESTION = "What is the plot of the story?"

FULL = SupportConfig()
_COMBINED = replace(FULL, entity_penalty=0.0, negation_penalty=0.0)
VARIANTS = {
    "cosine": replace(_COMBINED, lexical_weight=0.0),
    "lexical": replace(_COMBINED, lexical_weight=1.0),
    "combined": _COMBINED,
    "+entity": replace(FULL, negation_penalty=0.0),
    "+negation=full": FULL,
}
SWEEP = (0.15, 0.2, 0.3, 0.35, 0.4)  # thresholds shown beside the default

@dataclass
class Case:
    """One story's candidates and the sentences to score against them."""

    candidates: list[str]
    true: list[str]
    planted: dict[str, list[str]]


def load_stories(split: str) -> list[dict]:
    path = SQUALITY / f"{split}.jsonl"
    if not path.exists():
        sys.exit(f"SQuALITY not found at {path}: nothing to measure (see shared/data/references).")
    with path.open() as lines:
        return [json.loads(line) for line in lines]


def plot_sentences(story: dict) -> list[str]:
    """Sentences of the story's human plot summaries, fragments of under four words dropped."""
    question = next(q for q in story["questions"] if q["question_text"] == PLOT_QUESTION)
    return [
        s.strip()
        for response in question["responses"]
        for s in split_sentences(response["response_text"])
        if len(s.split()) >= 4
    ]


def build_case(story: dict, other: dict, rng: random.Random) -> Case:
    candidates = split_sentences(story["document"])
    true = plot_sentences(story)
    cast = characters(candidates)
    foreign = plot_sentences(other)
    planted = {
        "foreign": rng.sample(foreign, min(len(foreign), len(true))),
        "swap": [s for s in (swap_name(t, cast, rng) for t in true) if s],
        "negation": [s for s in (negate(t) for t in true) if s],
    }
    return Case(candidates, true, planted)


def top_scores(scorer: EvidenceScorer, claims: list[str], candidates: list[str]) -> np.ndarray:
    return np.array([ranked[0][1] for ranked in scorer.support(claims, candidates, top_k=1)])


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a true sentence outscores a planted one), ties counted half (Mann-Whitney)."""
    greater = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(greater + 0.5 * ties)


def score_cases(scorer: EvidenceScorer, cases: list[Case]) -> dict[str, np.ndarray]:
    scores: dict[str, list[np.ndarray]] = {kind: [] for kind in ("true", *KINDS)}
    for case in cases:
        claims = [*case.true, *_planted(case)]
        top = top_scores(scorer, claims, case.candidates)
        scores["true"].append(top[: len(case.true)])
        offset = len(case.true)
        for kind in KINDS:
            scores[kind].append(top[offset : offset + len(case.planted[kind])])
            offset += len(case.planted[kind])
    return {kind: np.concatenate(parts) for kind, parts in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=("dev", "train"), default="dev")
    parser.add_argument("--stories", type=int, default=10)
    parser.add_argument("--all", action="store_true", help="every story of the split")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--seed", type=int, default=0)
    add_smoke_flag(parser)
    args = apply_smoke(parser.parse_args(), stories=2, all=False)

    started = time.perf_counter()
    stories = load_stories(args.split)
    chosen = stories if args.all else stories[: args.stories]
    rng = random.Random(args.seed)
    cases = [
        build_case(story, stories[(i + 1) % len(stories)], rng) for i, story in enumerate(chosen)
    ]
    scorer = EvidenceScorer()
    loaded = time.perf_counter()
    scorer.embed([s for c in cases for s in (*c.candidates, *c.true, *_planted(c))])
    embedded = time.perf_counter()
    results = {name: score_cases(scorer.with_config(cfg), cases) for name, cfg in VARIANTS.items()}
    finished = time.perf_counter()

    counts = {kind: len(results["+negation=full"][kind]) for kind in ("true", *KINDS)}
    print(
        f"{len(cases)} {args.split} stories, sentences: "
        + ", ".join(f"{kind} {n}" for kind, n in counts.items())
    )
    print(f"{'variant':<15}" + "".join(f"{'AUC ' + kind:>14}" for kind in KINDS))
    for name, scores in results.items():
        aucs = "".join(f"{roc_auc(scores['true'], scores[kind]):>14.3f}" for kind in KINDS)
        print(f"{name:<15}{aucs}")
    full = results["+negation=full"]
    print("share flagged by full (score < threshold):")
    print(f"{'threshold':<15}" + "".join(f"{kind:>14}" for kind in ("true", *KINDS)))
    for threshold in sorted({args.threshold, *SWEEP}):
        shares = "".join(f"{np.mean(full[k] < threshold):>14.1%}" for k in ("true", *KINDS))
        mark = " <- default" if threshold == args.threshold else ""
        print(f"{threshold:<15}{shares}{mark}")
    print(
        f"wall {finished - started:.1f}s (model load {loaded - started:.1f}s, "
        f"embedding {embedded - loaded:.1f}s, scoring {finished - embedded:.1f}s)"
    )


def _planted(case: Case) -> list[str]:
    return [s for kind in KINDS for s in case.planted[kind]]


if __name__ == "__main__":
    main()
