"""The helper stage: the critique helper learns from comparisons of critiques of summaries with planted
errors, judged by a SIMULATED labeler that knows what it planted.

A critique is better when its (verified) items point at the planted sentence and it accuses no other
sentence; an item naming or quoting no summary sentence counts against it most, since the service drops
such items. The helper judges one sentence at a time (`service.engine.helpers.verify`), so critiques are
trained as the per-sentence verifications they stand for (`training.critique_data`): behavioural cloning on
the labeler's reference critiques first (the planted sentence's kind, and SUPPORTED for one other sentence),
then DPO from that adapter on comparisons of its own sampled critiques with each other and with the
reference (Wu et al. 2021 likewise start from behavioural cloning). A quarter of the groups is held out of
both to tune the served flag threshold on P(SUPPORTED) (`training.helper_calibration`).
"""

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from recursum.service.engine.helpers.critique import claim_index, parse_items
from recursum.service.engine.helpers.verify import choose, summary_distributions, verdict_critique
from recursum.service.engine.helpers.verify_calibration import VerifyCalibration
from recursum.service.engine.models.bundle import MANIFEST_FILE, AdapterEntry
from recursum.service.engine.models.runtime import ModelRuntime, load_runtime
from recursum.service.engine.models.spec import NO_BUNDLE, ModelSpec
from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.service.engine.pipeline.planting import KINDS, PlantKind, characters, plant
from recursum.service.engine.pipeline.prompts import SUPPORTED, critique_input, verify_input
from recursum.service.engine.pipeline.sentences import split_sentences
from recursum.training.datasets import Comparison, Demonstration, now, read_jsonl, split_by_group, write_jsonl
from recursum.training.dpo import DpoMetrics, DpoTraining, train_dpo
from recursum.training.helper_calibration import average_precision, most_doubted_rate, tune_flag_threshold
from recursum.training.levels import LevelsConfig, level_data
from recursum.training.sft import SftMetrics, SftTraining, train_sft

FABRICATED_PENALTY = 0.5  # per item quoting nothing in the summary
FALSE_ACCUSATION_PENALTY = 0.25  # per item on a sentence that was not planted (it may still be wrong)
HELPER_SFT_WEIGHT = 1.0  # DPO keeps the reference critiques' likelihood up (RPO) after the warm start
HELPER_EVALUATOR = "simulated:helper-labeler"
CRITIQUE_SAMPLES = 4  # the cloned helper's critiques per summary compared for DPO: verdicts are cheap
CALIBRATION_SHARE = 0.25  # of the planted summaries' groups: held out of training to tune the flag threshold
_VERDICT = {"foreign": "UNSUPPORTED", "swap": "ENTITY", "negation": "CONTRADICTED"}


@dataclass(frozen=True)
class PlantedSummary:
    """A summary (as sentences) of `source` with sentence `index` made false in the way `kind` says;
    `closest` holds each sentence's closest source sentence, as its evidence link would."""

    source: str
    sentences: list[str]
    index: int
    kind: PlantKind
    group: str
    closest: list[str]


@dataclass(frozen=True)
class CritiqueOutcome:
    found: bool  # some verified item points at the planted sentence
    false_items: int  # verified items on other sentences
    fabricated: int  # items naming or quoting no summary sentence

    @property
    def score(self) -> float:
        return float(self.found) - FALSE_ACCUSATION_PENALTY * self.false_items \
            - FABRICATED_PENALTY * self.fabricated


class HelperMeasure(msgspec.Struct, kw_only=True):
    """How a helper's critiques did on planted summaries: recall of planted errors and precision of
    its verified items (only the model's items; evidence items are the same with or without it)."""

    summaries: int
    found_rate: float
    precision: float
    items: int
    fabricated: int
    by_kind: dict[str, float]
    most_doubted: float  # share of summaries whose least likely SUPPORTED sentence is the planted one
    average_precision: float  # of all sentences ranked by P(SUPPORTED) at finding the planted ones


def planted_summaries(scorer: EvidenceScorer, examples: Sequence[tuple[str, str, str]], book_text: str,
                      count: int, seed: int) -> list[PlantedSummary]:
    """Up to `count` (source, summary, group) examples with one planted error each, kinds in turn; the
    scorer finds each sentence's closest source sentence the way the service's evidence does."""
    rng = random.Random(seed)
    book_sentences = split_sentences(book_text)
    cast = characters(book_sentences)
    planted = []
    for number, (source, summary, group) in enumerate(rng.sample(list(examples), len(examples))):
        sentences = split_sentences(summary)
        if len(sentences) < 2:
            continue
        foreign = [s for s in rng.sample(book_sentences, min(200, len(book_sentences)))
                   if s not in source and 30 < len(s) < 240]
        kind = KINDS[number % len(KINDS)]
        if (made := plant(sentences, kind, cast, foreign, rng)) is not None:
            source_sentences = split_sentences(source)
            closest = [source_sentences[ranked[0][0]] if ranked else ""
                       for ranked in scorer.support(made[0], source_sentences, top_k=1)]
            planted.append(PlantedSummary(source, made[0], made[1], kind, group, closest))
        if len(planted) == count:
            break
    return planted


def reference_critique(example: PlantedSummary) -> str:
    """The critique an ideal helper writes: the planted sentence's kind, nothing on the others."""
    return verdict_critique([_VERDICT[example.kind] if i == example.index else SUPPORTED
                          for i in range(len(example.sentences))])


def critique_outcome(text: str, example: PlantedSummary) -> CritiqueOutcome:
    found, false_items, fabricated = False, 0, 0
    for item in parse_items(text):
        if item.kind == "omission":
            continue  # the planted error is never an omission; omissions are judged elsewhere
        index = claim_index(item, example.sentences)
        if index is None:
            fabricated += 1
        elif index == example.index:
            found = True
        else:
            false_items += 1
    return CritiqueOutcome(found, false_items, fabricated)


def generate_critiques(runtime: ModelRuntime, examples: Sequence[PlantedSummary],
                       samples: int) -> list[list[str]]:
    """`samples` critiques per example (the most likely verdicts first), from the runtime's helper role."""
    return [[verdict_critique(choose(d, sample)) for sample in range(samples)]
            for d in _distributions(runtime, examples)]


def critique_comparisons(examples: Sequence[PlantedSummary], critiques: Sequence[list[str]],
                         evaluator: str) -> list[Comparison]:
    """Reference vs each model critique, and model critiques against each other where they differ."""
    comparisons = []
    for number, (example, texts) in enumerate(zip(examples, critiques, strict=True)):
        task_input = critique_input(example.source, example.sentences, example.closest)
        reference = reference_critique(example)
        scored = [(reference, 1.0 + critique_outcome(reference, example).score)]
        scored += [(text, critique_outcome(text, example).score) for text in dict.fromkeys(texts) if text]
        for i in range(len(scored)):
            for j in range(i + 1, len(scored)):
                (a, score_a), (b, score_b) = scored[i], scored[j]
                if a.strip() == b.strip() or score_a == score_b:
                    continue
                comparisons.append(Comparison(
                    id=f"helper:{number}:{i}:{j}", task="helper:critique", height=0, input=task_input,
                    group=example.group, candidates=(a, b), preferred=0 if score_a > score_b else 1,
                    confidence=min(1.0, abs(score_a - score_b)), evaluator=evaluator, created=now(),
                ))
    return comparisons


def reference_demonstrations(examples: Sequence[PlantedSummary]) -> list[Demonstration]:
    """The reference verdicts of each planted sentence and of one other sentence of its summary (SUPPORTED):
    balanced, because with every sentence SUPPORTED outnumbers the planted ones about 3 to 1 and SFT on all
    of them learned little more than to answer SUPPORTED (loss at the majority-class level)."""
    rng = random.Random(0)
    demonstrations = []
    for e in examples:
        true = rng.choice([i for i in range(len(e.sentences)) if i != e.index])
        for index, verdict in ((e.index, _VERDICT[e.kind]), (true, SUPPORTED)):
            demonstrations.append(Demonstration(
                task="helper:verify", height=0, input=verify_input(e.sentences[index], e.closest[index]),
                group=e.group, output=verdict, source=HELPER_EVALUATOR))
    return demonstrations


@dataclass(frozen=True)
class HelperTrainingRun:
    comparisons: list[Comparison]
    sft: SftMetrics
    dpo: DpoMetrics
    calibration: VerifyCalibration


def train_critique_helper(spec: ModelSpec, examples: Sequence[PlantedSummary], target: Path,
                          sft: SftTraining, dpo: DpoTraining) -> HelperTrainingRun:
    """Behavioural cloning on the reference critiques into `<target>-sft`, then DPO from it into `target`
    on comparisons of the cloned helper's own critiques (see the module doc); the flag threshold is
    tuned on the groups held out of both and saved with the adapter."""
    fit, held_out = calibration_split(examples)
    warm = target.with_name(f"{target.name}-sft")
    sft_metrics = train_sft(reference_demonstrations(fit), warm, sft)
    cloned = load_runtime(_with_helper(spec, warm))
    critiques = generate_critiques(cloned, fit, samples=CRITIQUE_SAMPLES)
    comparisons = critique_comparisons(fit, critiques, evaluator=HELPER_EVALUATOR)
    from_warm = msgspec.structs.replace(dpo.lora, init_adapter=str(warm))
    dpo_metrics = train_dpo(comparisons, target, msgspec.structs.replace(
        dpo, lora=from_warm, sft_weight=HELPER_SFT_WEIGHT))
    calibration = calibrate_helper(load_runtime(_with_helper(spec, target)), held_out)
    calibration.save(target)
    return HelperTrainingRun(comparisons, sft_metrics, dpo_metrics, calibration)


def _with_helper(spec: ModelSpec, adapter: Path) -> ModelSpec:
    return msgspec.structs.replace(spec, adapters={**spec.adapters, "helper": str(adapter)})


def calibration_split(examples: Sequence[PlantedSummary]
                      ) -> tuple[list[PlantedSummary], list[PlantedSummary]]:
    """(to train on, to tune the flag threshold on): whole groups on either side."""
    return split_by_group(examples, CALIBRATION_SHARE, seed=0)


def _distributions(runtime: ModelRuntime, examples: Sequence[PlantedSummary]) -> list[list[list[float]]]:
    return summary_distributions(runtime, [(e.sentences, e.closest) for e in examples])


def _supported(distributions: Sequence[Sequence[Sequence[float]]]) -> list[list[float]]:
    """Per summary, per sentence, P(SUPPORTED): the helper's doubt, lower is more doubted."""
    return [[values[0] for values in d] for d in distributions]


def calibrate_helper(runtime: ModelRuntime, examples: Sequence[PlantedSummary]) -> VerifyCalibration:
    """The runtime helper's flag threshold tuned on `examples` (`helper_calibration`)."""
    return tune_flag_threshold(_supported(_distributions(runtime, examples)), [e.index for e in examples])


def measure_helper(runtime: ModelRuntime, examples: Sequence[PlantedSummary],
                   calibration: VerifyCalibration | None) -> HelperMeasure:
    """Critiques of `examples` as served (sample 0 with `calibration`, the runtime's own or another):
    share of planted errors found and precision of verified items; and, with no threshold, how often the
    sentence the helper doubts most is the planted one and the average precision of its doubts."""
    distributions = _distributions(runtime, examples)
    texts = [verdict_critique(choose(d, 0, calibration)) for d in distributions]
    doubts, planted = _supported(distributions), [e.index for e in examples]
    outcomes = [critique_outcome(text, example) for text, example in zip(texts, examples, strict=True)]
    found = sum(o.found for o in outcomes)
    verified = found + sum(o.false_items for o in outcomes)
    by_kind = {kind: _mean([o.found for o, e in zip(outcomes, examples, strict=True) if e.kind == kind])
               for kind in KINDS}
    return HelperMeasure(summaries=len(examples), found_rate=_mean([o.found for o in outcomes]),
                         precision=found / verified if verified else 0.0, items=verified,
                         fabricated=sum(o.fabricated for o in outcomes), by_kind=by_kind,
                         most_doubted=most_doubted_rate(doubts, planted),
                         average_precision=average_precision(doubts, planted))


def evidence_baseline(scorer: EvidenceScorer, examples: Sequence[PlantedSummary]) -> tuple[float, float]:
    """What the evidence alone does with each sentence's support by its closest source sentence as the
    doubt: (how often the least supported sentence is the planted one, average precision), the bar for a
    helper's `most_doubted` and `average_precision`."""
    supports = []
    for example in examples:
        ranked = scorer.support(example.sentences, split_sentences(example.source), top_k=1)
        supports.append([r[0][1] if r else 0.0 for r in ranked])
    planted = [e.index for e in examples]
    return most_doubted_rate(supports, planted), average_precision(supports, planted)


def _mean(values: Sequence[bool]) -> float:
    return sum(values) / len(values) if values else 0.0


def train_helper_stage(config: LevelsConfig, out: Path) -> AdapterEntry:
    """The levels pipeline's helper stage: planted summaries from the chunk level's data, the critique
    helper trained on them (`train_critique_helper`) into `helper/`, measured on held-out groups before
    and after."""
    chunk_data = list(read_jsonl(level_data(out, 0), Comparison))
    examples = {(c.input, candidate, c.group) for c in chunk_data for candidate in c.candidates}
    book_text = "\n".join(Path(book).read_text(encoding="utf-8")[: config.data.max_chars]
                          for book in config.data.books) or "\n".join(c.input for c in chunk_data)
    planted = planted_summaries(EvidenceScorer(), sorted(examples), book_text,
                                config.data.comparisons_per_level, seed=7)
    train_part, held_out = split_by_group(planted, config.held_out_fraction, seed=7)
    spec = ModelSpec(base=config.lora.base, quantization=config.lora.quantization,
                     bundle=str(out) if (out / MANIFEST_FILE).is_file() else NO_BUNDLE)
    before = measure_helper(load_runtime(spec), held_out, calibration=None)
    target = out / "helper"
    run = train_critique_helper(spec, train_part, target,
                                msgspec.structs.replace(config.helper_sft, lora=config.lora),
                                msgspec.structs.replace(config.dpo, lora=config.lora))
    path = out / "data" / "helper-critique.jsonl"
    write_jsonl(path, run.comparisons)
    after = measure_helper(load_runtime(_with_helper(spec, target)), held_out, run.calibration)
    return AdapterEntry(role="helper", path="helper", heights=[0], method="sft+dpo",
                        data_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                        metrics={"pairs": run.dpo.pairs, "sft_final_loss": run.sft.final_loss,
                                 "reward_accuracy": run.dpo.reward_accuracy,
                                 "found_rate_before": before.found_rate, "found_rate_after": after.found_rate,
                                 "precision_before": before.precision, "precision_after": after.precision,
                                 "most_doubted_before": before.most_doubted,
                                 "most_doubted_after": after.most_doubted,
                                 "average_precision_before": before.average_precision,
                                 "average_precision_after": after.average_precision,
                                 "flag_below": run.calibration.flag_below})
