"""The critique helper's flag threshold: tuned on held-out planted summaries after training.

Each planted summary has one false sentence. A threshold on P(SUPPORTED) flags every sentence under it;
the one kept is the threshold with the best F-beta (beta 0.5: precision weighs twice what recall does,
since every false flag costs an evaluator's attention, and with F1 a weak verifier's best threshold
flags nearly every sentence) of planted errors found and flags that are planted, over every threshold
the held-out sentences allow. Average precision and the most-doubted rate measure the same ranking with
no threshold at all, so helpers (and the evidence alone) can be compared before any is tuned.
"""

from collections.abc import Sequence

from recursum.service.engine.helpers.verify_calibration import VerifyCalibration

FLAG_BETA = 0.5  # recall's weight against precision in the tuned threshold's F-beta


def _labelled(doubts: Sequence[Sequence[float]], planted: Sequence[int]) -> list[tuple[float, bool]]:
    """Every sentence's score (`doubts[s][i]`, P(SUPPORTED) or support: lower is more doubted) and
    whether it is its summary's planted sentence (`planted[s]`)."""
    return [(score, i == index) for scores, index in zip(doubts, planted, strict=True)
            for i, score in enumerate(scores)]


def flag_outcome(doubts: Sequence[Sequence[float]], planted: Sequence[int],
                 flag_below: float) -> tuple[float, float]:
    """(recall, precision) of flagging each sentence whose score is under `flag_below`."""
    flagged = [is_planted for score, is_planted in _labelled(doubts, planted) if score < flag_below]
    found = sum(flagged)
    return found / len(planted) if planted else 0.0, found / len(flagged) if flagged else 0.0


def tune_flag_threshold(doubts: Sequence[Sequence[float]], planted: Sequence[int]) -> VerifyCalibration:
    """The threshold with the best F-beta on these summaries (the strictest of equals: fewer false flags);
    with nothing to tune on, a threshold that flags nothing."""
    best = (0.0, 0.0, 0.0, 0.0)  # f_beta, flag_below, recall, precision
    weight = FLAG_BETA**2
    for threshold in sorted({score for scores in doubts for score in scores}):
        flag_below = threshold + 1e-9  # flags the sentences at `threshold` and under
        recall, precision = flag_outcome(doubts, planted, flag_below)
        f_beta = (1 + weight) * recall * precision / (weight * precision + recall) if recall else 0.0
        if f_beta > best[0]:
            best = (f_beta, flag_below, recall, precision)
    return VerifyCalibration(flag_below=best[1], summaries=len(planted),
                             sentences=sum(len(scores) for scores in doubts), recall=best[2],
                             precision=best[3])


def average_precision(doubts: Sequence[Sequence[float]], planted: Sequence[int]) -> float:
    """Average precision of ranking all sentences by doubt (lowest score first) at finding the planted
    ones; ties broken against the planted sentence (False sorts first), so an uninformative helper
    scores no better than chance (the planted share of sentences)."""
    found, total = 0, 0.0
    for rank, (_, is_planted) in enumerate(sorted(_labelled(doubts, planted)), 1):
        if is_planted:
            found += 1
            total += found / rank
    return total / len(planted) if planted else 0.0


def most_doubted_rate(doubts: Sequence[Sequence[float]], planted: Sequence[int]) -> float:
    """How often a summary's most doubted sentence (the first of equals) is its planted one."""
    picks = [scores.index(min(scores)) == index for scores, index in zip(doubts, planted, strict=True)]
    return sum(picks) / len(picks) if picks else 0.0
