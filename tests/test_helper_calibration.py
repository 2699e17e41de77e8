"""The critique helper's flag threshold: tuned on held-out planted summaries, saved with the adapter,
applied to the served verdicts."""

import pytest

from recursum.service.engine.errors import ModelError
from recursum.service.engine.helpers.verify import choose
from recursum.service.engine.helpers.verify_calibration import VERIFY_CALIBRATION_FILE, VerifyCalibration
from recursum.training.helper_calibration import (
    average_precision,
    flag_outcome,
    most_doubted_rate,
    tune_flag_threshold,
)

# Three summaries, P(SUPPORTED) per sentence; the planted sentence is the most doubted in two of them.
DOUBTS = [[0.9, 0.4, 0.8], [0.3, 0.85, 0.7], [0.6, 0.95]]
PLANTED = [1, 0, 1]


def test_a_calibrated_helper_flags_sentences_under_its_threshold_with_their_likeliest_other_verdict():
    distributions = [[0.7, 0.05, 0.2, 0.05], [0.9, 0.05, 0.03, 0.02]]
    calibration = VerifyCalibration(flag_below=0.8, summaries=1, sentences=2, recall=1.0, precision=1.0)
    assert choose(distributions, 0) == ["SUPPORTED", "SUPPORTED"]
    assert choose(distributions, 0, calibration) == ["CONTRADICTED", "SUPPORTED"]
    assert choose(distributions, 5, calibration) == choose(distributions, 5)  # draws are not thresholded


def test_the_tuned_threshold_maximises_f_beta_and_reports_what_it_found_on_the_held_out_summaries():
    calibration = tune_flag_threshold(DOUBTS, PLANTED)
    assert calibration.flag_below == pytest.approx(0.4)  # flags 0.4 and 0.3: both planted, nothing else
    assert (calibration.recall, calibration.precision) == pytest.approx((2 / 3, 1.0))
    assert (calibration.summaries, calibration.sentences) == (3, 8)
    assert flag_outcome(DOUBTS, PLANTED, 0.65) == pytest.approx((2 / 3, 2 / 3))


def test_with_nothing_to_tune_on_the_threshold_flags_nothing():
    calibration = tune_flag_threshold([], [])
    assert calibration.flag_below == 0.0 and choose([[0.1, 0.9, 0.0, 0.0]], 0, calibration) == ["SUPPORTED"]


def test_average_precision_is_one_for_a_perfect_ranking_and_at_most_chance_for_an_uninformative_one():
    assert average_precision([[0.9, 0.1], [0.2, 0.8]], [1, 0]) == 1.0
    # the first two planted sentences are doubted most, the third least
    assert average_precision(DOUBTS, PLANTED) == pytest.approx((1 + 1 + 3 / 8) / 3)
    flat = [[0.5, 0.5, 0.5], [0.5, 0.5]]
    assert average_precision(flat, [0, 1]) <= 2 / 5


def test_the_most_doubted_rate_counts_summaries_whose_lowest_score_is_the_planted_sentence():
    assert most_doubted_rate(DOUBTS, PLANTED) == pytest.approx(2 / 3)
    assert most_doubted_rate([[0.5, 0.5]], [1]) == 0.0  # the first of equals is picked


def test_a_calibration_round_trips_beside_the_adapter_and_a_broken_file_is_named(tmp_path):
    assert VerifyCalibration.load(tmp_path) is None
    calibration = tune_flag_threshold(DOUBTS, PLANTED)
    calibration.save(tmp_path)
    assert VerifyCalibration.load(tmp_path) == calibration
    (tmp_path / VERIFY_CALIBRATION_FILE).write_text('{"flag_below": "high"}')
    with pytest.raises(ModelError, match=VERIFY_CALIBRATION_FILE):
        VerifyCalibration.load(tmp_path)
