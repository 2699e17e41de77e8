"""Does training help? Reward model, best-of-n and the critique helper on the default model, CPU.

1. The default model summarizes excerpts of the TRAIN books best-of-4; the SIMULATED labeler A
   (seed 0) judges pairs of each chunk's candidates, a share of them with a planted false sentence.
2. A reward model (TRL RewardTrainer, LoRA) is trained on those comparisons.
3. An excerpt of another book (EVAL) is summarized best-of-4 with the trained reward adapter (the
   engine's own best-of-n). A held-out labeler B (another seed, more noise) judges:
   - pairs of its chunks' candidates (made the same way): the reward model's held-out accuracy;
   - the reward model's pick against the greedy summary: best-of-4's win rate over greedy.
4. The critique helper is trained on planted summaries of the TRAIN books (SFT on the reference
   verdicts, then DPO on its own critiques; its flag threshold tuned on a quarter of them held out) and
   measured on planted summaries of the EVAL book: planted errors found and precision as served, and,
   with no threshold, how often the sentence it doubts most is the planted one and the average
   precision of its doubts; base helper prompt (as served, and calibrated on the same held-out quarter)
   vs trained, beside chance and the evidence alone.

    python bench/training.py [--train-books alice_in_wonderland jekyll_and_hyde]
        [--eval-book frankenstein] [--max-chars 16000] [--eval-chars 32000] [--reward-epochs 3]
        [--helper-examples 120] [--skip-helper] [--no-cache]
    python bench/training.py --smoke    # every step on a page of each book, a few training steps (CI)

About 75 minutes on 2 AVX2-only cores (measured 2026-12-02): the reward model 30 min (204 pairs x 3
epochs), the eval book best-of-4 6 min, the helper's SFT 9 min and its DPO (a quarter epoch of ~1,000
verdict pairs) 20 min, measuring a few minutes. Generations are cached under
$RECURSUM_HOME/cache/nodes, so reruns skip them. Slower CPUs have taken several times that (a reward step
of 4 pairs 50 s, against 10 s here): there, cut it down with --reward-epochs 1 --helper-examples 32, or
--skip-helper.
"""

import argparse
import tempfile
import time
from pathlib import Path

import msgspec
from _data import shared_path
from _smoke import add_smoke_flag, apply_smoke

from recursum.schemas.tree import Node
from recursum.service.engine.models.model_store import pull_default_model, recursum_home
from recursum.service.engine.models.reward import score_pairs
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.service.engine.pipeline.node_cache import DirectoryNodeCache, MemoryNodeCache
from recursum.service.engine.pipeline.prompts import task_prompt
from recursum.service.engine.pipeline.tree import Tree
from recursum.training.dpo import DpoTraining
from recursum.training.helper_training import (
    calibrate_helper,
    calibration_split,
    evidence_baseline,
    measure_helper,
    planted_summaries,
    train_critique_helper,
)
from recursum.training.labeler import LabelerConfig, SimulatedLabeler
from recursum.training.reward import RewardTraining, preference_pairs, train_reward
from recursum.training.sft import SftTraining
from recursum.training.synth import SynthConfig, candidate_tree, tree_comparisons

TRAIN_LABELER = LabelerConfig(seed=0, noise=0.02)
MARGINS = (0.0, 0.25, 0.5, 1.0)  # reward gain over greedy a sample needs to be kept
HELD_OUT_LABELER = LabelerConfig(seed=1, noise=0.05)


def chunk_examples(tree: Tree, text: str) -> list[tuple[str, str, str]]:
    """(source, summary, group) for every chunk summary and candidate: material for planting."""
    return [(text[node.span.start : node.span.end], summary, f"{tree.title}:{node.id}")
            for node in tree.nodes.values() if node.height == 0
            for summary in [node.summary, *(c.summary for c in node.candidates)]]


def greedy(node: Node) -> tuple[str, float | None]:
    """The greedy summary and its reward: a candidate when a sample was chosen, else the node's own."""
    return next(((c.summary, c.reward) for c in node.candidates if c.source == "greedy"),
                (node.summary, node.reward))


def best_of_wins(tree: Tree, text: str, labeler: SimulatedLabeler, margin: float) -> tuple[int, int, int]:
    """(wins, losses, same) of each chunk's reward-chosen summary against its greedy one, the choice
    falling back to greedy unless the best beats it by `margin` (in reward std units)."""
    wins = losses = same = 0
    for node in tree.nodes.values():
        if node.height != 0:
            continue
        greedy_text, greedy_reward = greedy(node)
        if greedy_text == node.summary or node.reward - greedy_reward <= margin:
            same += 1
            continue
        source = text[node.span.start : node.span.end]
        verdict = labeler.label(id=node.id, task="chunk", height=0, input=source, group="eval",
                                candidates=(node.summary, greedy_text)).preferred
        wins += verdict == 0
        losses += verdict == 1
        same += verdict == "tie"
    return wins, losses, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-books", nargs="+", default=["alice_in_wonderland", "jekyll_and_hyde"])
    parser.add_argument("--eval-book", default="frankenstein")
    parser.add_argument("--max-chars", type=int, default=16_000, help="excerpt of each train book")
    parser.add_argument("--eval-chars", type=int, default=32_000, help="excerpt of the eval book")
    parser.add_argument("--best-of", type=int, default=4)
    parser.add_argument("--chunk-tokens", type=int, default=300, help="small: more comparisons per page")
    parser.add_argument("--summary-tokens", type=int, default=120)
    parser.add_argument("--reward-epochs", type=float, default=3.0)
    parser.add_argument("--reward-lr", type=float, default=2e-4)
    parser.add_argument("--max-tokens", type=int, default=512, help="reward sequence budget")
    parser.add_argument("--helper-examples", type=int, default=120,
                        help="planted summaries to train on (at most what the train excerpts give)")
    parser.add_argument("--helper-sft-epochs", type=float, default=2.0, help="warm start on references")
    parser.add_argument("--helper-epochs", type=float, default=0.25, help="DPO from the warm start")
    parser.add_argument("--skip-helper", action="store_true")
    parser.add_argument("--max-steps", type=int, default=-1,
                        help="optimizer steps of each training run; -1 trains the epochs given")
    parser.add_argument("--train-batch", type=int, default=8, help="examples per step of the helper's runs")
    parser.add_argument("--no-cache", action="store_true",
                        help="generate everything again instead of reusing $RECURSUM_HOME/cache/nodes")
    add_smoke_flag(parser)
    args = apply_smoke(parser.parse_args(), max_chars=2000, eval_chars=1200, best_of=2, chunk_tokens=100,
                       summary_tokens=48, reward_epochs=1.0, max_tokens=256, helper_examples=12,
                       helper_sft_epochs=1.0, helper_epochs=0.5, skip_helper=False, no_cache=True,
                       max_steps=1, train_batch=2, train_books=["alice_in_wonderland"])
    eval_book = shared_path(f"books/{args.eval_book}.txt")
    pull_default_model()
    started = time.perf_counter()
    scorer = EvidenceScorer()
    synth = SynthConfig(task="chunk", n=10_000, best_of=args.best_of, max_chars=args.max_chars,
                        chunk_tokens=args.chunk_tokens, summary_tokens=args.summary_tokens)

    clock = time.perf_counter()
    runtime = load_runtime(ModelSpec())
    # Reruns reuse the generations.
    cache = MemoryNodeCache() if args.no_cache else DirectoryNodeCache(recursum_home() / "cache" / "nodes")
    train_trees = [candidate_tree(runtime, scorer, shared_path(f"books/{book}.txt"), synth, cache)
                   for book in args.train_books]
    labeler = SimulatedLabeler(scorer, TRAIN_LABELER)
    train_pairs = [pair for tree, text in train_trees
                   for pair in tree_comparisons(tree, text, labeler, synth)]
    chunks = sum(len(tree.heights[0]) for tree, _ in train_trees)
    print(f"1. {', '.join(args.train_books)}: {chunks} chunks best-of-{args.best_of}, "
          f"{len(train_pairs)} comparisons by labeler A ({time.perf_counter() - clock:.0f} s)")

    with tempfile.TemporaryDirectory() as scratch:
        reward_dir = Path(scratch) / "reward"
        config = RewardTraining(epochs=args.reward_epochs, max_steps=args.max_steps,
                                learning_rate=args.reward_lr, max_tokens=args.max_tokens)
        metrics = train_reward(train_pairs, [], reward_dir, config)
        print(f"2. reward model: {metrics.train_pairs} pairs, loss {metrics.train_loss:.3f} "
              f"({metrics.seconds:.0f} s)")

        clock = time.perf_counter()
        rewarded = load_runtime(ModelSpec(adapters={"reward": str(reward_dir)}))
        eval_synth = msgspec.structs.replace(synth, seed=1, max_chars=args.eval_chars)
        eval_tree, eval_text = candidate_tree(rewarded, scorer, eval_book, eval_synth, cache)
        held_out_labeler = SimulatedLabeler(scorer, HELD_OUT_LABELER)
        eval_pairs, ties = preference_pairs(list(tree_comparisons(eval_tree, eval_text, held_out_labeler,
                                                                  eval_synth)))
        prompts = [task_prompt(c.task, c.input) for c, _, _ in eval_pairs]
        chosen = score_pairs(rewarded, prompts, [a for _, a, _ in eval_pairs])
        rejected = score_pairs(rewarded, prompts, [b for _, _, b in eval_pairs])
        accuracy = sum(a > b for a, b in zip(chosen, rejected, strict=True)) / len(eval_pairs)
        outcomes = {margin: best_of_wins(eval_tree, eval_text, SimulatedLabeler(scorer, HELD_OUT_LABELER),
                                         margin) for margin in MARGINS}
        print(f"3. {args.eval_book}: {len(eval_tree.heights[0])} chunks best-of-{args.best_of} with the "
              f"reward adapter ({time.perf_counter() - clock:.0f} s)")
        print(f"   reward held-out accuracy vs labeler B: {accuracy:.1%} on {len(eval_pairs)} pairs "
              f"({ties} ties dropped)   goal >= 70%")
        for margin, (wins, losses, same) in outcomes.items():
            decided = wins + losses
            print(f"   best-of-{args.best_of} vs greedy under labeler B, a sample kept when its reward "
                  f"gains > {margin:.2f} std: {wins} wins, {losses} losses, {same} same/tie -> win rate "
                  f"{wins / decided if decided else 0:.1%} of decided, "
                  f"{(wins + 0.5 * same) / max(1, decided + same):.1%} counting same as half   goal >= 60%")

        if not args.skip_helper:
            clock = time.perf_counter()
            train_examples = [e for tree, text in train_trees for e in chunk_examples(tree, text)]
            train_text = "\n".join(text for _, text in train_trees)
            train_planted = planted_summaries(scorer, train_examples, train_text, args.helper_examples,
                                              seed=0)
            eval_planted = planted_summaries(scorer, chunk_examples(eval_tree, eval_text), eval_text,
                                             args.helper_examples, seed=1)
            base = measure_helper(runtime, eval_planted, calibration=None)
            base_calibration = calibrate_helper(runtime, calibration_split(train_planted)[1])
            base_calibrated = measure_helper(runtime, eval_planted, base_calibration)
            helper_dir = Path(scratch) / "helper"
            run = train_critique_helper(
                ModelSpec(), train_planted, helper_dir,
                SftTraining(epochs=args.helper_sft_epochs, max_steps=args.max_steps, learning_rate=2e-4,
                            max_tokens=256, batch_size=args.train_batch),
                DpoTraining(epochs=args.helper_epochs, max_steps=args.max_steps, learning_rate=1e-4,
                            max_tokens=256, batch_size=args.train_batch))
            trained_runtime = load_runtime(ModelSpec(adapters={"helper": str(helper_dir)}))
            trained = measure_helper(trained_runtime, eval_planted, trained_runtime.verify_calibration)
            print(f"4. critique helper: trained on {len(train_planted)} planted train-book summaries "
                  f"(SFT on reference critiques {run.sft.seconds:.0f} s, then DPO on {len(run.comparisons)} "
                  f"comparisons {run.dpo.seconds:.0f} s; flag threshold P(SUPPORTED) < "
                  f"{run.calibration.flag_below:.3f} tuned on {run.calibration.summaries} of them held out; "
                  f"the base's < {base_calibration.flag_below:.3f}), measured on {len(eval_planted)} planted "
                  f"{args.eval_book} summaries ({time.perf_counter() - clock:.0f} s)")
            print(f"   {'helper':<17}{'found':>8}{'precision':>11}{'items':>7}{'fabricated':>12}"
                  f"{'doubted':>9}{'AP':>7}" + "".join(f"{kind:>10}" for kind in base.by_kind))
            for name, measure in (("base (as served)", base), ("base, calibrated", base_calibrated),
                                  ("trained", trained)):
                print(f"   {name:<17}{measure.found_rate:>8.1%}{measure.precision:>11.1%}{measure.items:>7}"
                      f"{measure.fabricated:>12}{measure.most_doubted:>9.1%}{measure.average_precision:>7.3f}"
                      + "".join(f"{v:>10.1%}" for v in measure.by_kind.values()))
            chance = sum(1 / len(e.sentences) for e in eval_planted) / len(eval_planted)
            planted_share = len(eval_planted) / sum(len(e.sentences) for e in eval_planted)
            print(f"   {'chance':<17}{'':>8}{planted_share:>11.1%}{'':>19}{chance:>9.1%}{planted_share:>7.3f}"
                  "   (random sentences)")
            least_supported, evidence_ap = evidence_baseline(scorer, eval_planted)
            print(f"   {'evidence':<17}{'':>38}{least_supported:>9.1%}{evidence_ap:>7.3f}   (doubt = how "
                  "little its closest source sentence supports it)")
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
