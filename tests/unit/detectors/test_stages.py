"""Calibration, combination, thresholds and alarm aggregation (hand-computed vectors)."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.detectors.alarms import AlarmAggregator
from vigil.detectors.calibration import TailCalibrator
from vigil.detectors.combination import agreement_weights, maximum, rank_mean, to_unit, weighted_mean
from vigil.detectors.pipeline import rolling_max, tail_threshold
from vigil.errors import DataError


def test_calibration_is_monotone_bounded_and_keeps_the_tail_apart() -> None:
    cal = TailCalibrator(tail=0.9).fit(np.arange(1.0, 101.0))
    s = np.array([-5.0, 1.0, 50.0, 90.0, 91.0, 100.0, 120.0, 400.0])
    u = cal(s)
    assert (np.diff(u) >= 0).all() and (u >= 0).all() and (u <= 1).all()
    assert u[0] == 0.0
    assert u[3] == pytest.approx(0.9, abs=0.01)  # continuous at the tail quantile
    assert cal.surprisal(np.array([400.0]))[0] > cal.surprisal(np.array([120.0]))[0]  # no saturation


def test_calibration_needs_scores() -> None:
    with pytest.raises(DataError):
        TailCalibrator().fit(np.array([1.0, 2.0]))


def test_combiners() -> None:
    z = np.array([[1.0, 3.0], [0.0, 0.0]])
    assert weighted_mean(z).tolist() == [2.0, 0.0]
    assert weighted_mean(z, np.array([3.0, 1.0])).tolist() == [1.5, 0.0]
    assert maximum(z).tolist() == [3.0, 0.0]
    assert maximum(z, np.array([1.0, 0.0])).tolist() == [1.0, 0.0]
    u = to_unit(z)
    np.testing.assert_allclose(to_unit(rank_mean(z)), u.mean(axis=1))


def test_agreement_weights_downweight_the_odd_one_out() -> None:
    z = np.array([[0.0, 0.1, 3.0], [1.0, 1.1, 0.0], [2.0, 2.2, 1.0], [3.0, 2.9, 2.0], [4.0, 4.1, 0.5]])
    w = agreement_weights(z)
    assert w.sum() == pytest.approx(1.0)
    assert w[2] < w[0] and w[2] < w[1]
    assert agreement_weights(z[:, :1]).tolist() == [1.0]


def test_rolling_max_is_causal() -> None:
    assert rolling_max(np.array([1.0, 5.0, 2.0, 0.0, 0.0]), 2).tolist() == [1.0, 5.0, 5.0, 2.0, 0.0]


def test_tail_threshold_matches_plain_quantile_when_not_extrapolating() -> None:
    z = np.arange(1000.0)
    assert tail_threshold(z, 0.1) == pytest.approx(np.quantile(z, 0.9))
    assert tail_threshold(z, 1e-4) > z.max() * 0.98


def test_one_noisy_point_is_not_an_alarm() -> None:
    agg = AlarmAggregator(k=2, n=3)
    assert not agg.run([0, 1, 0, 0, 1, 0, 0]).any()


def test_hold_merges_flapping_into_one_alarm() -> None:
    out = AlarmAggregator(k=2, n=2, hold=3).run([1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0])
    assert out.astype(int).tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]


def test_suppression_blocks_a_new_alarm_right_after_one() -> None:
    above = [1, 1, 0, 1, 1, 0, 0, 0, 0, 1, 1]
    out = AlarmAggregator(k=2, n=2, suppress=4).run(above)
    assert out.astype(int).tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]


def test_alarm_state_round_trips() -> None:
    a = AlarmAggregator(k=2, n=3, hold=2)
    a.run([1, 1, 0])
    b = AlarmAggregator(k=2, n=3, hold=2)
    b.load_state(a.state_dict())
    assert a.run([0, 0, 0, 1]).tolist() == b.run([0, 0, 0, 1]).tolist()


def test_pca_on_constant_training_data_scores_departures_without_warnings() -> None:
    from vigil.detectors.pca import PCADetector

    det = PCADetector().fit(np.ones((20, 1)))
    assert det.score_samples(np.array([[1.0], [3.0]])).tolist() == [0.0, 4.0]
