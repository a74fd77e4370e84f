"""Threshold exceedances -> alarms: k-of-n confirmation, hold-open and re-alarm suppression."""

from __future__ import annotations

from typing import Any

import numpy as np


class AlarmAggregator:
    """Stateful alarm logic shared by batch and streaming (one :meth:`step` per time step).

    An alarm is *raised* when at least ``k`` of the last ``n`` steps were above the threshold, so
    one noisy point never pages anyone. It stays on while that holds and for ``hold`` steps after
    (flapping around the threshold becomes one alarm, not many). After an alarm ends, a new one is
    *suppressed* for ``suppress`` steps.

    Examples
    --------
    >>> agg = AlarmAggregator(k=2, n=3, hold=1)
    >>> agg.run([0, 1, 0, 1, 1, 0, 0, 0, 1, 0]).astype(int).tolist()
    [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    """

    def __init__(self, k: int = 2, n: int = 3, hold: int = 0, suppress: int = 0) -> None:
        self.k = k
        self.n = n
        self.hold = hold
        self.suppress = suppress
        self.reset()

    def reset(self) -> None:
        self._recent = [False] * self.n
        self._since_trigger = 1 << 30
        self._since_end = 1 << 30
        self._active = False

    def step(self, above: bool) -> bool:
        self._recent = self._recent[1:] + [bool(above)]
        triggered = sum(self._recent) >= self.k
        self._since_trigger = 0 if triggered else self._since_trigger + 1
        if self._active:
            self._active = self._since_trigger <= self.hold
            if not self._active:
                self._since_end = 0
        elif triggered and self._since_end >= self.suppress:
            self._active = True
        if not self._active:
            self._since_end += 1
        return self._active

    def run(self, above: np.ndarray | list[bool]) -> np.ndarray:
        """Apply :meth:`step` to every element in order (the state carries over)."""
        return np.array([self.step(bool(a)) for a in np.asarray(above)], dtype=bool)

    def state_dict(self) -> dict[str, Any]:
        return {
            "recent": list(self._recent),
            "since_trigger": self._since_trigger,
            "since_end": self._since_end,
            "active": self._active,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._recent = [bool(x) for x in state["recent"]]
        self._since_trigger = int(state["since_trigger"])
        self._since_end = int(state["since_end"])
        self._active = bool(state["active"])


def dilate(mask: np.ndarray, margin: int) -> np.ndarray:
    """Widen every True run by ``margin`` rows on each side.

    >>> dilate(np.array([0, 0, 0, 1, 0, 0, 0], dtype=bool), 1).astype(int).tolist()
    [0, 0, 1, 1, 1, 0, 0]
    """
    mask = np.asarray(mask, dtype=bool)
    if margin <= 0 or not mask.any():
        return mask
    kernel = np.ones(2 * margin + 1, dtype=np.int64)
    # "full" then trimmed: "same" returns the longer input's length when the mask is the shorter.
    return np.convolve(mask.astype(np.int64), kernel, mode="full")[margin : margin + len(mask)] > 0
