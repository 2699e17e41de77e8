"""Reward-model agreement with SQuALITY reviewers on held-out stories (k-fold by story).

Data: 720 human pairwise preferences (16 stories, 80 questions, 3 summaries each: `bart`, `bart-dpr`
and a `human` one; every pair ranked by 3 reviewers). Folds are groups of whole stories: the reward
model (`training.reward.train_reward`, LoRA on the default model) trains on the other stories'
comparisons and is scored on the fold's through the serving runtime (`score_pairs`, as
`pairwise_accuracy` does). Agreement is pooled over folds, so each comparison counts once, and split
into the hard pair (bart vs bart-dpr, where reviewers split about 62/38) and the pairs with the
human summary. Training-free baselines and the reviewers' own agreement give the figures context.

What the reward model reads (`--variants`), rebuilt from `Comparison.input`:
- question: the question and the summary; the story is dropped.
- story: the question, the story's first `--story-tokens` tokens, and the summary.
Default run (shared 2-core CPU, 23 min): question 0.793 overall / 0.600 hard / 0.890 human pairs,
story 0.762 / 0.596 / 0.846 at twice the cost, so `question` is what a reward model should read here.

    python bench/reward_agreement.py                                  # default: both variants, 4 folds
    python bench/reward_agreement.py --variants question --max-steps 0 --epochs 1   # a full epoch a fold
    python bench/reward_agreement.py --smoke                          # one fold, one step (CI)
"""

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import torch
from _data import SHARED_DATA
from _smoke import add_smoke_flag, apply_smoke

from recursum.service.engine.models.model_store import pull_default_model
from recursum.service.engine.models.reward import score_pairs
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import NO_BUNDLE, ModelSpec
from recursum.service.engine.pipeline.prompts import task_prompt
from recursum.training.datasets import Comparison
from recursum.training.modeling import LoraSettings, load_tokenizer
from recursum.training.reward import RewardTraining, train_reward
from recursum.training.squality import import_squality, split_squality_input

SOURCE = SHARED_DATA / "comparisons" / "squality_human_eval"
HARD = frozenset({"bart", "bart-dpr"})
SUBSETS: dict[str, Callable[[Comparison], bool]] = {
    "overall": lambda c: True,
    "hard": lambda c: frozenset(c.policies or ()) == HARD,
    "human": lambda c: "human" in (c.policies or ()),
}
VARIANTS = ("question", "story")

Verdict = Callable[[Comparison], float]  # 1 = agrees with the reviewer, 0 = disagrees, 0.5 = tie


def rewrite_inputs(comparisons: Sequence[Comparison], variant: str, tokenizer,
                   story_tokens: int) -> list[Comparison]:
    """The comparisons with `input` rebuilt to what the reward model reads in `variant`."""
    truncated: dict[str, str] = {}

    def reads(text: str) -> str:
        question, story = split_squality_input(text)
        if variant == "question":
            return f"Question: {question}"
        if story not in truncated:
            ids = tokenizer.encode(story, add_special_tokens=False)[:story_tokens]
            truncated[story] = tokenizer.decode(ids)
        return f"Question: {question}\n\nStory:\n{truncated[story]}"

    return [msgspec.structs.replace(c, input=reads(c.input)) for c in comparisons]


def story_folds(comparisons: Sequence[Comparison], folds: int, seed: int) -> list[list[str]]:
    """Stories shuffled with `seed` and dealt into `folds` groups of whole stories."""
    stories = sorted({c.group for c in comparisons})
    if not 2 <= folds <= len(stories):
        sys.exit(f"--folds must be between 2 and {len(stories)} (the number of stories)")
    random.Random(seed).shuffle(stories)
    return [sorted(stories[i::folds]) for i in range(folds)]


def agreement(comparisons: Sequence[Comparison], verdict: Verdict) -> dict[str, float]:
    """Mean verdict over each subset of the comparisons."""
    return {name: statistics.fmean(verdict(c) for c in comparisons if keep(c))
            for name, keep in SUBSETS.items()}


def score_verdict(scores: dict[tuple[str, str], float]) -> Verdict:
    """Agreement of a scorer that gives each (input, summary) a number (higher = better)."""
    def verdict(c: Comparison) -> float:
        preferred, other = (scores[(c.input, c.candidates[i])] for i in (c.preferred, 1 - c.preferred))
        return 1.0 if preferred > other else 0.5 if preferred == other else 0.0
    return verdict


def repeated_4grams(summary: str) -> float:
    """Share of repeated word 4-grams: how far a summary fell into a loop (BART often does)."""
    words = re.findall(r"\w+", summary.lower())
    grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def baselines(comparisons: Sequence[Comparison]) -> dict[str, dict[str, float]]:
    """Training-free scorers: the longer summary, and the one with fewer repeated 4-grams."""
    texts = {(c.input, s) for c in comparisons for s in c.candidates}
    return {
        "longer summary (words)": agreement(comparisons, score_verdict(
            {(i, s): len(s.split()) for i, s in texts})),
        "fewer repeated 4-grams": agreement(comparisons, score_verdict(
            {(i, s): -repeated_4grams(s) for i, s in texts})),
    }


def reviewer_agreement(comparisons: Sequence[Comparison]) -> tuple[dict[str, float], dict[str, float]]:
    """Per subset: how often two reviewers of the same pair agree, and the ceiling of any scorer
    that gives one verdict per pair (the share of labels that match their pair's majority)."""
    labels: dict[tuple, list[Comparison]] = defaultdict(list)
    for c in comparisons:
        labels[(c.group, c.input, frozenset(c.candidates))].append(c)
    pairwise, ceiling = {}, {}
    for name, keep in SUBSETS.items():
        agree = pairs = matches = total = 0
        for rows in labels.values():
            if not keep(rows[0]):
                continue
            counts = Counter(c.candidates[c.preferred] if c.preferred != "tie" else "tie" for c in rows)
            agree += sum(n * (n - 1) // 2 for n in counts.values())
            pairs += len(rows) * (len(rows) - 1) // 2
            matches += max(counts.values())
            total += len(rows)
        pairwise[name], ceiling[name] = agree / pairs, matches / total
    return pairwise, ceiling


def model_scores(adapter: Path, comparisons: Sequence[Comparison],
                 lora: LoraSettings) -> dict[tuple[str, str], float]:
    """Reward of every distinct (input, summary) in `comparisons`, from the serving runtime. The three
    reviewers of a pair share its two texts, so each is scored once (a third of `pairwise_accuracy`'s
    work, same numbers)."""
    texts = sorted({(c.input, s) for c in comparisons for s in c.candidates})
    runtime = load_runtime(ModelSpec(base=lora.base, quantization=lora.quantization,
                                     adapters={"reward": str(adapter)}, bundle=NO_BUNDLE))
    tasks = {c.input: c.task for c in comparisons}
    rewards = score_pairs(runtime, [task_prompt(tasks[i], i) for i, _ in texts], [s for _, s in texts])
    return dict(zip(texts, rewards, strict=True))


def training_sample(train: list[Comparison], config: RewardTraining, fold: int) -> list[Comparison]:
    """The comparisons a `max_steps` run sees: a seeded draw of steps x batch of them. Drawn here rather
    than by the trainer's sampler so that `train_reward`'s normalisation pass (up to 256 candidates
    scored after training) costs no more than the pairs trained on."""
    if config.max_steps <= 0 or config.max_steps * config.batch_size >= len(train):
        return train
    return random.Random(config.seed * 1000 + fold).sample(train, config.max_steps * config.batch_size)


def run_variant(variant: str, comparisons: Sequence[Comparison], folds: list[list[str]],
                config: RewardTraining, scratch: Path) -> tuple[dict[str, float], float, float]:
    """Train and score one reward model per fold; pooled agreement, train seconds, total seconds."""
    started = time.perf_counter()
    train_seconds = 0.0
    verdicts: dict[str, float] = {}
    for index, stories in enumerate(folds):
        fold_started = time.perf_counter()
        held_out = [c for c in comparisons if c.group in stories]
        train = training_sample([c for c in comparisons if c.group not in stories], config, index)
        adapter = scratch / f"{variant}-fold{index}"
        metrics = train_reward(train, (), adapter, config)
        train_seconds += metrics.seconds
        scored_at = time.perf_counter()
        verdict = score_verdict(model_scores(adapter, held_out, config.lora))
        verdicts |= {c.id: verdict(c) for c in held_out}
        fold = agreement(held_out, verdict)
        print(f"  {variant} fold {index + 1}/{len(folds)} stories {','.join(stories)}: "
              f"{metrics.train_pairs} train / {len(held_out)} held-out pairs, loss {metrics.train_loss:.3f}, "
              f"overall {fold['overall']:.3f} hard {fold['hard']:.3f} human {fold['human']:.3f}; "
              f"train {metrics.seconds:.0f} s, score {time.perf_counter() - scored_at:.0f} s, "
              f"fold {time.perf_counter() - fold_started:.0f} s", flush=True)
    held = [c for c in comparisons if c.id in verdicts]
    return agreement(held, lambda c: verdicts[c.id]), train_seconds, time.perf_counter() - started


def row(label: str, figures: dict[str, float], extra: str = "") -> str:
    return (f"| {label:<34} | {figures['overall']:7.3f} | {figures['hard']:9.3f} | "
            f"{figures['human']:11.3f} | {extra:<24} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="question,story",
                        help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--folds", type=int, default=4, help="groups of whole stories")
    parser.add_argument("--run-folds", type=int, default=None,
                        help="run only the first N folds (smoke runs); default all")
    parser.add_argument("--max-steps", type=int, default=8,
                        help="optimizer steps per fold; <= 0 trains --epochs instead")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=4, help="pairs per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="high: a bounded run takes few steps")
    parser.add_argument("--rank", type=int, default=LoraSettings().rank)
    parser.add_argument("--quantization", default="none", choices=["nf4", "none"],
                        help="none (fp32 LoRA) trains faster than nf4 QLoRA on CPU")
    parser.add_argument("--max-tokens", type=int, default=512,
                        help="per (input, summary) sequence; the summary keeps at most half")
    parser.add_argument("--story-tokens", type=int, default=128, help="story budget of the story variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; on a shared 2-core machine 1 ran a step 7x faster than 2")
    add_smoke_flag(parser)
    args = apply_smoke(parser.parse_args(), variants="question", run_folds=1, max_steps=1, batch_size=2,
                       max_tokens=256)

    if not SOURCE.is_dir():
        print(f"skipped: {SOURCE} is absent (this bench reads ../shared/data beside the project)")
        return
    variants = args.variants.split(",")
    if unknown := set(variants) - set(VARIANTS):
        sys.exit(f"--variants: unknown {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    pull_default_model()
    lora = LoraSettings(quantization=args.quantization, rank=args.rank, alpha=2 * args.rank)
    config = RewardTraining(lora=lora, epochs=args.epochs, max_steps=args.max_steps, learning_rate=args.lr,
                            batch_size=args.batch_size, max_tokens=args.max_tokens, seed=args.seed)
    comparisons = list(import_squality(SOURCE, created=datetime.now(UTC)))
    folds = story_folds(comparisons, args.folds, args.seed)[: args.run_folds]
    tokenizer = load_tokenizer(lora.base)
    steps = f"{args.max_steps} steps" if args.max_steps > 0 else f"{args.epochs:g} epochs"
    print(f"SQuALITY human eval: {len(comparisons)} comparisons, {len({c.group for c in comparisons})} "
          f"stories, {args.folds} folds by story (running {len(folds)}); {steps} x {args.batch_size} pairs, "
          f"lr {args.lr:g}, LoRA rank {args.rank}, {args.quantization}, max {args.max_tokens} tokens, "
          f"{args.threads} thread(s), seed {args.seed}", flush=True)

    results = {}
    with tempfile.TemporaryDirectory(prefix="reward-agreement-") as scratch:
        for variant in variants:
            rewritten = rewrite_inputs(comparisons, variant, tokenizer, args.story_tokens)
            lengths = [len(tokenizer.encode(c.input)) for c in rewritten[:: len(rewritten) // 60]]
            print(f"variant {variant}: input ~{statistics.fmean(lengths):.0f} tokens before the summary",
                  flush=True)
            torch.manual_seed(args.seed)
            results[variant] = run_variant(variant, rewritten, folds, config, Path(scratch))

    held = [c for c in comparisons if any(c.group in stories for stories in folds)]
    pairwise, ceiling = reviewer_agreement(held)
    print(f"\nHeld-out agreement with the reviewers' labels, pooled over {len(folds)} folds "
          f"({len(held)} comparisons; hard = bart vs bart-dpr, human = pairs with the human summary)")
    print(f"| {'scorer':<34} | overall | hard pair | human pairs | {'wall time':<24} |")
    print(f"|{'-' * 36}|---------|-----------|-------------|{'-' * 26}|")
    for variant, (figures, train_seconds, seconds) in results.items():
        label = f"reward model: {variant}" + (f" {args.story_tokens} tok" if variant == "story" else "")
        print(row(label, figures, f"train {train_seconds:.0f} s, all {seconds:.0f} s"))
    for label, figures in baselines(held).items():
        print(row(f"baseline: {label}", figures))
    print(row("reviewers: two agree on a pair", pairwise))
    print(row("ceiling: one verdict per pair", ceiling, "majority of 3 reviewers"))
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
