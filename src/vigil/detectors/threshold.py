"""A threshold that keeps learning while a model serves: the stream's own quiet scores move it.

A model fitted on 15 minutes of a host has seen little of its normal variety; thresholds fixed at
training time then page on every slightly busier hour (measured on the live stack: the alarm on for
54-60 % of quiet time). :class:`LiveThreshold` tracks the ``1 - rate`` quantile of the smoothed
ensemble surprisal over the steps that raised **no** alarm, forgetting with a half-life, and the
model compares against ``max(training threshold, that quantile)``, capped at ``max_raise`` above the
training threshold so that a stream that is surprised all the time cannot argue itself deaf.
Alarmed steps never teach it: a fault does not make the next fault look normal.

The quantile comes from a histogram over surprisal (``bin`` wide, up to the calibration's maximum);
forgetting is exact exponential decay done lazily, by growing the weight of each new step instead of
shrinking every bin at every step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vigil.detectors.calibration import MAX_SURPRISAL

_RESCALE_AT = 1e100


class LiveThreshold:
    """Streaming threshold over un-alarmed scores (one per entity stream; plain picklable state).

    Examples
    --------
    >>> live = LiveThreshold(base=3.0, rate=0.1, half_life_steps=1000, min_steps=20, max_raise=2.0)
    >>> for step in range(100):
    ...     live.update(4.0 + (step % 10) / 10, alarmed=False)
    >>> live.value  # the upper edge of the bin holding the 90 % quantile of 4.0 .. 4.9
    4.95
    >>> for step in range(100):
    ...     live.update(30.0, alarmed=False)
    >>> live.value  # never more than max_raise above the training threshold
    5.0
    """

    def __init__(
        self,
        base: float,
        rate: float,
        half_life_steps: float,
        min_steps: int,
        max_raise: float,
        bin_width: float = 0.05,
        refresh_every: int = 16,
    ) -> None:
        self.base = float(base)
        self.rate = float(rate)
        self.min_steps = int(min_steps)
        self.max_raise = float(max_raise)
        self.bin_width = float(bin_width)
        self.refresh_every = max(1, int(refresh_every))
        self._growth = 2.0 ** (1.0 / max(float(half_life_steps), 1.0))
        self._hist = np.zeros(int(math.ceil(MAX_SURPRISAL / self.bin_width)) + 1)
        self._weight = 1.0
        self._total = 0.0
        self._count = 0
        self._since_refresh = 0
        self.value = self.base

    def update(self, z: float, alarmed: bool) -> None:
        """Record one step's smoothed surprisal; alarmed steps are not learned from."""
        if alarmed or not math.isfinite(z):
            return
        b = min(max(int(z / self.bin_width), 0), len(self._hist) - 1)
        self._hist[b] += self._weight
        self._total += self._weight
        self._weight *= self._growth
        self._count += 1
        if self._weight > _RESCALE_AT:
            self._hist /= self._weight
            self._total /= self._weight
            self._weight = 1.0
        self._since_refresh += 1
        if self._since_refresh >= self.refresh_every and self._count >= self.min_steps:
            self._since_refresh = 0
            self.value = self._quantile_threshold()

    def _quantile_threshold(self) -> float:
        cum = np.cumsum(self._hist)
        b = int(np.searchsorted(cum, (1.0 - self.rate) * self._total, side="left"))
        q = (b + 1) * self.bin_width  # the bin's upper edge: at least that share lies at or below it
        return float(min(max(q, self.base), self.base + self.max_raise))

    @property
    def learned_steps(self) -> int:
        return self._count

    def state_dict(self) -> dict[str, Any]:
        return {
            "hist": self._hist.tolist(),
            "weight": self._weight,
            "total": self._total,
            "count": self._count,
            "since_refresh": self._since_refresh,
            "value": self.value,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        hist = np.asarray(state["hist"], dtype=np.float64)
        if hist.shape != self._hist.shape:
            return  # another binning: start learning afresh rather than misread it
        self._hist = hist
        self._weight = float(state["weight"])
        self._total = float(state["total"])
        self._count = int(state["count"])
        self._since_refresh = int(state["since_refresh"])
        self.value = float(state["value"])
