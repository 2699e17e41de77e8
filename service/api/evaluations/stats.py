"""Evaluator statistics from the stored judgements: gold accuracy, agreement, speed and report use.

Agreement is measured on overlapped pairs (`RECURSUM_EVALUATION_OVERLAP` > 1): a judgement agrees when it
matches the strict majority of the *other* evaluators of its pair (pairs where they have none are left
out), so with two evaluators it is simply whether they agree. Gold items count only towards gold accuracy.
"""

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import combinations

from recursum.schemas.evaluations import EvaluationStats, EvaluatorStats
from recursum.service.store.evaluations import Judgement


def _majority_of_others(judgement: Judgement, pair: Sequence[Judgement]) -> str | None:
    others = Counter(j.preference for j in pair if j.evaluator != judgement.evaluator)
    if not others:
        return None
    preference, count = others.most_common(1)[0]
    return preference if count * 2 > sum(others.values()) else None


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def evaluation_stats(judgements: Sequence[Judgement]) -> EvaluationStats:
    """The statistics of every evaluator and overall, from all judgements (gold items included)."""
    pairs: dict[str, list[Judgement]] = defaultdict(list)
    for judgement in judgements:
        if judgement.gold_correct is None:
            pairs[judgement.task_id].append(judgement)
    overlapped = {task: pair for task, pair in pairs.items() if len({j.evaluator for j in pair}) >= 2}
    agreement: dict[str, list[bool]] = defaultdict(list)
    with_reports: list[bool] = []
    without_reports: list[bool] = []
    for pair in overlapped.values():
        for judgement in pair:
            majority = _majority_of_others(judgement, pair)
            if majority is None:
                continue
            agrees = judgement.preference == majority
            agreement[judgement.evaluator].append(agrees)
            (with_reports if judgement.reports_opened else without_reports).append(agrees)
    evaluator_pairs = [a.preference == b.preference for pair in overlapped.values()
                       for a, b in combinations(pair, 2) if a.evaluator != b.evaluator]
    by_evaluator: dict[str, list[Judgement]] = defaultdict(list)
    for judgement in judgements:
        by_evaluator[judgement.evaluator].append(judgement)
    return EvaluationStats(
        evaluators=[_evaluator(name, own, overlapped, agreement[name])
                    for name, own in sorted(by_evaluator.items())],
        pairs_overlapped=len(overlapped), inter_evaluator_agreement=_share(evaluator_pairs),
        agreement_with_reports=_share(with_reports), agreement_without_reports=_share(without_reports))


def _evaluator(name: str, own: Sequence[Judgement], overlapped: dict[str, list[Judgement]],
               agreement: Sequence[bool]) -> EvaluatorStats:
    gold = [j.gold_correct for j in own if j.gold_correct is not None]
    judged = [j for j in own if j.gold_correct is None]
    return EvaluatorStats(
        evaluator=name, judged=len(judged), gold_answered=len(gold), gold_accuracy=_share(gold),
        overlapped=sum(j.task_id in overlapped for j in judged), majority_agreement=_share(agreement),
        median_seconds=statistics.median(j.seconds for j in own) if own else None,
        reports_opened=sum(j.reports_opened for j in own),
        judged_with_reports=sum(j.reports_opened > 0 for j in own))


def evaluator_stats(judgements: Sequence[Judgement], evaluator: str) -> EvaluatorStats:
    """One evaluator's own record (zeros before their first comparison)."""
    found = next((s for s in evaluation_stats(judgements).evaluators if s.evaluator == evaluator), None)
    return found or EvaluatorStats(evaluator=evaluator, judged=0, gold_answered=0, gold_accuracy=None,
                                   overlapped=0, majority_agreement=None, median_seconds=None,
                                   reports_opened=0, judged_with_reports=0)
