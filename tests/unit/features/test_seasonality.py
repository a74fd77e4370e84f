"""Seasonal profiles: period choice from history length, and the fallback."""

from __future__ import annotations

import numpy as np

from vigil.features.seasonality import SeasonalProfile, slot_of


def test_slots() -> None:
    # 1970-01-05 00:00 UTC was a Monday.
    monday = 4 * 86_400.0
    assert slot_of(monday, "week") == 0
    assert slot_of(monday + 3600 * 25, "week") == 25
    assert slot_of(monday + 3600 * 25, "day") == 1


def test_short_history_falls_back_to_overall_median(smd_train: np.ndarray) -> None:
    ts = np.arange(600) * 60.0  # ten hours
    prof = SeasonalProfile().fit(smd_train[:600], ts)
    assert prof.period_ == "none"
    np.testing.assert_allclose(prof.expected(ts[:3]), np.tile(np.median(smd_train[:600], axis=0), (3, 1)))


def test_two_days_give_an_hour_of_day_profile(smd_train: np.ndarray, smd_test: np.ndarray) -> None:
    # The two real slices back to back stand in for two days of history (only the slots matter).
    x = np.vstack([smd_train, smd_test])[: 2 * 1440]
    ts = np.arange(len(x)) * 60.0
    prof = SeasonalProfile().fit(x, ts)
    assert prof.period_ == "day"
    hour3 = slot_of(ts, "day") == 3
    np.testing.assert_allclose(prof.expected(3 * 3600.0), np.median(x[hour3], axis=0))
