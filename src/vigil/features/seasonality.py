"""Hour-of-day / hour-of-week profiles learned from history, with a fallback for short history."""

from __future__ import annotations

import numpy as np

from vigil.features.windows import nan_reduce

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S
# A profile slot needs this many full periods of history before it is trusted; one period would
# make the profile equal to the very history it is meant to judge.
MIN_PERIODS = 2


def slot_of(ts: np.ndarray | float, period: str) -> np.ndarray:
    """Slot index of unix-second timestamps: hour of day (0-23) or hour of week (0-167, Monday 0)."""
    hours = np.floor(np.asarray(ts, dtype=np.float64) / 3600.0).astype(np.int64)
    if period == "week":
        # 1970-01-01 was a Thursday, three days after a Monday.
        return (hours + 72) % 168
    return hours % 24


class SeasonalProfile:
    """Median level of each metric per time slot, learned once at fit time.

    ``period`` is chosen from the history span: ``"week"`` (hour-of-week) with at least two weeks,
    ``"day"`` (hour-of-day) with at least two days, else ``"none"``, where every slot holds the
    metric's overall median so the residual degrades to a plain deviation from the typical level.
    Slots never seen in training fall back to the overall median too.
    """

    def fit(self, values: np.ndarray, ts: np.ndarray) -> SeasonalProfile:
        # The span covered by n samples includes the last sample's own step.
        span = float(ts[-1] - ts[0]) * len(ts) / (len(ts) - 1) if len(ts) > 1 else 0.0
        if span >= MIN_PERIODS * WEEK_S:
            self.period_ = "week"
        elif span >= MIN_PERIODS * DAY_S:
            self.period_ = "day"
        else:
            self.period_ = "none"
        n_slots = {"week": 168, "day": 24, "none": 1}[self.period_]
        overall = nan_reduce(np.nanmedian, values, axis=0)
        profile = np.tile(overall, (n_slots, 1))
        if self.period_ != "none":
            slots = slot_of(ts, self.period_)
            for s in range(n_slots):
                rows = values[slots == s]
                if len(rows):
                    med = nan_reduce(np.nanmedian, rows, axis=0)
                    profile[s] = np.where(np.isnan(med), overall, med)
        self.profile_ = profile
        return self

    def expected(self, ts: np.ndarray | float) -> np.ndarray:
        """Expected level at each timestamp, shape ``(len(ts), M)`` (or ``(M,)`` for a scalar)."""
        if self.period_ == "none":
            slots = np.zeros(np.shape(ts), dtype=np.int64)
        else:
            slots = slot_of(ts, self.period_)
        return self.profile_[slots]
