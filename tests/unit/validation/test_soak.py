"""The arithmetic of `vigil soak` (the soak itself runs against the live stack in
tests/integration/training/test_live_training.py)."""

from __future__ import annotations

import math

import numpy as np

from vigil.validation.soak import Replay, _fill, copy_labels, histogram_quantile


def test_histogram_quantile_counts_only_the_requests_between_two_readings() -> None:
    before = {0.1: 10.0, 0.5: 10.0, 1.0: 10.0, math.inf: 10.0}
    after = {0.1: 10.0, 0.5: 60.0, 1.0: 110.0, math.inf: 110.0}  # 50 in (0.1, 0.5], 50 in (0.5, 1]
    assert histogram_quantile(0.5, before, after) == 0.5
    assert math.isclose(histogram_quantile(0.99, before, after), 0.5 + 0.5 * 49.0 / 50.0)
    assert histogram_quantile(0.99, after, after) is None  # nothing in between


def test_counters_keep_rising_across_the_loop_and_gauges_repeat() -> None:
    values = np.array([[10.0, 12.0, 14.0], [5.0, 3.0, 4.0]])  # a counter, a gauge
    replay = Replay([{"__name__": "c_total"}, {"__name__": "g"}], values, np.array([6.0, 0.0]))
    assert list(replay.at(3)) == [16.0, 5.0]  # the counter goes on from 14 by its usual step
    assert list(replay.at(5)) == [20.0, 4.0]


def test_copies_are_new_entities_with_the_same_series() -> None:
    labels = {"__name__": "node_load1", "instance": "127.0.0.1:9100", "job": "node", "cpu": "0"}
    assert copy_labels(labels, 3) == {**labels, "instance": "soak3-127.0.0.1:9100", "job": "soak3-node"}


def test_holes_in_a_recorded_series_carry_the_last_value() -> None:
    nan = math.nan
    assert list(_fill(np.array([nan, 1.0, nan, 3.0, nan]))) == [1.0, 1.0, 1.0, 3.0, 3.0]
