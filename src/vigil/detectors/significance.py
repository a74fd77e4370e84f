"""Practical significance: a surprising step pages only if a signal moved enough to matter.

An ensemble trained on minutes to hours of one host is *statistically* surprised by many harmless
things: a CPU that is 13 % busy instead of its usual 9 %, a client pool holding 55 connections
instead of 26, disk IOPS *falling* from 22 to 3. An operator acts on none of them. So each signal
carries a minimum deviation in its own units and a direction, and a step counts as anomalous only
when the ensemble is surprised **and** at least one signal the model attributes the surprise to
deviates from what the model expects (its training median) by more than that minimum, in that
direction. A signal without a rule (SMD's unnamed columns, a user's own metric) is never the reason
to hold an alarm back: its deviation always counts.

The rule is ``deviation > max(min, ratio * |expected|)``: ``min`` in the signal's units, ``ratio``
relative to the usual level (a request rate that halves matters at 4 rps and at 4,000 rps).

The same minimum also works the other way: a signal whose recent level lies past the whole range it
had in training, in its direction, by more than its minimum is an anomaly even when the ensemble is
not surprised enough. Trained on a host with CPU bursts, the ensemble scored a memory fault
(memory_used_ratio 0.08 -> 0.26, 40 standard deviations out) no higher than the bursts, because
standardised features are clipped and the calibrated tail sits above both; no operator would call
a host using 18 points more memory than it ever did "normal".

Signals that burst in normal work (CPU) cannot be judged by their range over three steps, but they
can over a longer stretch: a signal whose rule says ``sustained`` is also an anomaly when its median
over the last ``sustained_window`` steps lies past the range that longer median had in training by
more than the minimum, and its recent level is past that range too. A host trained with 10-15 s CPU
bursts to 80 % learned those bursts; it never learned a CPU held at 100 %. The second condition
ends the alarm as soon as the level falls back, not half a window later.

A signal judged over a longer window (``window_s``) may also name a ``repeated_level``: when at
least two steps of that window reach it, the second most extreme of them is judged instead of the
median (or the median, if it is further out). At two to five requests a second a latency p99 is a
few requests; under packet loss the retransmitted ones (TCP waits at least 200 ms) are slow in two
or three seconds of five, not in most of them, so the median stays where it was.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np

from vigil.errors import DataError

DIRECTIONS = {"up": 1, "down": -1, "both": 0}


class PracticalSignificance:
    """Per-signal minimum deviations, fitted to the expected (training median) level of each signal.

    Parameters
    ----------
    rules : mapping
        ``{signal: {"min": float, "direction": "up"|"down"|"both", "ratio": float, "unit": str,
        "range": bool, "sustained": bool, "recent_too": bool, "window_s": float, "repeated_level": float}}``;
        signals absent from it have no minimum. Only signals whose rule says ``range`` or ``sustained``
        take part in :meth:`out_of_range`; ``repeated_level`` needs ``window_s`` and a direction.

    Examples
    --------
    >>> ps = PracticalSignificance({"cpu": {"min": 0.2, "direction": "up"}}).fit(["cpu", "x"], [0.1, 5.0])
    >>> ps.significant([0.2, 5.0], [0]), ps.significant([0.5, 5.0], [0]), ps.significant([0.0, 9.0], [1])
    (False, True, True)
    >>> mem = PracticalSignificance({"mem": {"min": 0.1, "direction": "up", "range": True}})
    >>> mem = mem.fit(["mem", "x"], [0.1, 5.0], low=[0.05, 1.0], high=[0.4, 9.0])
    >>> mem.out_of_range([0.5, 50.0]), mem.out_of_range([0.7, 5.0])
    ([], [0])
    >>> cpu = PracticalSignificance({"cpu": {"min": 0.2, "direction": "up", "sustained": True}})
    >>> cpu = cpu.fit(["cpu"], [0.1], slow_low=[0.05], slow_high=[0.3])
    >>> cpu.out_of_range([1.0], slow=[0.4]), cpu.out_of_range([1.0], slow=[0.9]), cpu.out_of_range([0.2], slow=[0.9])
    ([], [0], [])
    >>> rate = PracticalSignificance({"rps": {"min": 1.0, "direction": "down", "recent_too": True}}).fit(["rps"], [5.0])
    >>> rate.less_extreme(0, 0.0, 3.0), rate.less_extreme(0, 4.0, 0.0)  # a recovered level wins
    (3.0, 4.0)
    >>> p99 = PracticalSignificance({"p99": {"min": 0.05, "direction": "up", "window_s": 5, "repeated_level": 0.2}})
    >>> p99 = p99.fit(["p99"], [0.02])
    >>> p99.with_repeats(0, 0.03, 0.25), p99.with_repeats(0, 0.03, 0.1), p99.with_repeats(0, 0.3, 0.25)
    (0.25, 0.03, 0.3)
    """

    # Fitted before training ranges were kept: nothing is ever out of range.
    low_: np.ndarray | None = None
    high_: np.ndarray | None = None
    slow_low_: np.ndarray | None = None
    slow_high_: np.ndarray | None = None
    sustained_: np.ndarray | None = None
    recent_too_: np.ndarray | None = None
    repeated_level_: np.ndarray | None = None

    def __init__(self, rules: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.rules = rules

    def fit(
        self,
        signal_names: Sequence[str],
        expected: Sequence[float],
        low: Sequence[float] | None = None,
        high: Sequence[float] | None = None,
        slow_low: Sequence[float] | None = None,
        slow_high: Sequence[float] | None = None,
    ) -> Self:
        """``expected``: each signal's usual level; ``low``/``high``: the range it stayed in during
        training (as judged, e.g. its recent median), ``slow_low``/``slow_high`` the range of its
        median over the longer window, for :meth:`out_of_range`."""
        rules = dict(self.rules or {})
        names = [str(n) for n in signal_names]
        exp = np.asarray(expected, dtype=np.float64)
        if len(exp) != len(names):
            raise DataError(f"{len(names)} signals but {len(exp)} expected levels")
        bounds = []
        for label, given in (("low", low), ("high", high), ("slow_low", slow_low), ("slow_high", slow_high)):
            arr = None if given is None else np.asarray(given, dtype=np.float64)
            if arr is not None and len(arr) != len(names):
                raise DataError(f"{len(names)} signals but {len(arr)} {label} bounds")
            bounds.append(arr)
        self.low_, self.high_, self.slow_low_, self.slow_high_ = bounds
        self.signal_names_ = names
        self.expected_ = exp
        self.minimum_ = np.full(len(names), np.nan)  # NaN: no rule, any deviation counts
        self.direction_ = np.zeros(len(names), dtype=np.int64)
        self.ranged_ = np.zeros(len(names), dtype=bool)
        self.sustained_ = np.zeros(len(names), dtype=bool)
        self.recent_too_ = np.zeros(len(names), dtype=bool)
        self.repeated_level_ = np.full(len(names), np.nan)  # NaN: judged on the median alone
        self.units_ = [""] * len(names)
        for i, name in enumerate(names):
            rule = rules.get(name)
            if rule is None:
                continue
            direction = str(rule.get("direction", "both"))
            if direction not in DIRECTIONS:
                raise DataError(f"signal {name}: direction must be up, down or both, not {direction!r}")
            floor = float(rule.get("min", 0.0))
            ratio = float(rule.get("ratio", 0.0))
            if floor < 0 or ratio < 0:
                raise DataError(f"signal {name}: min and ratio must not be negative")
            level = abs(exp[i]) if math.isfinite(exp[i]) else 0.0
            self.minimum_[i] = max(floor, ratio * level)
            self.direction_[i] = DIRECTIONS[direction]
            self.ranged_[i] = bool(rule.get("range", False))
            self.sustained_[i] = bool(rule.get("sustained", False))
            self.recent_too_[i] = bool(rule.get("recent_too", False))
            repeated = rule.get("repeated_level")
            if repeated is not None:
                if not rule.get("window_s") or direction == "both":
                    raise DataError(f"signal {name}: repeated_level needs a window_s and an up or down direction")
                self.repeated_level_[i] = float(repeated)
            self.units_[i] = str(rule.get("unit", ""))
        return self

    def significant(self, values: Sequence[float] | np.ndarray, signals: Sequence[int] | np.ndarray) -> bool:
        """Whether any of the ``signals`` (indices) deviates by more than its minimum at ``values``."""
        return any(self.moved(values, i) for i in signals)

    def moved(self, values: Sequence[float] | np.ndarray, i: int) -> bool:
        """Whether signal ``i`` deviates from its expected level by more than its minimum, in its
        direction; always true for a signal without a rule."""
        minimum = self.minimum_[i]
        if math.isnan(minimum):
            return True
        d = float(values[i]) - self.expected_[i]
        if not math.isfinite(d):
            return False
        return bool(_toward(d, self.direction_[i]) > minimum)

    def less_extreme(self, i: int, a: float, b: float) -> float:
        """For a signal whose rule says ``recent_too``, of its recent value ``a`` and its value over the
        longer window ``b`` the one that deviates less from its expected level in its direction (``a``
        when they tie or either is NaN): the deviation counts only while both show it, so it ends as
        soon as the level is back. ``b`` for any other signal."""
        recent_too = self.recent_too_
        if recent_too is None or not recent_too[i]:
            return b
        direction, expected = self.direction_[i], self.expected_[i]
        return b if _toward(b - expected, direction) < _toward(a - expected, direction) else a

    def less_extreme_rows(self, columns: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """:meth:`less_extreme` for the signals ``columns`` over many rows at once."""
        direction, expected = self.direction_[columns], self.expected_[columns]
        recent_too = np.zeros(len(columns), dtype=bool) if self.recent_too_ is None else self.recent_too_[columns]
        with np.errstate(invalid="ignore"):
            nearer = _toward_rows(b - expected, direction) < _toward_rows(a - expected, direction)
            return np.where(recent_too & ~nearer, a, b)

    def repeats(self) -> dict[int, int]:
        """``{signal index: direction}`` of the signals with a ``repeated_level``."""
        levels = self.repeated_level_
        if levels is None:
            return {}
        return {int(i): int(self.direction_[i]) for i in np.flatnonzero(~np.isnan(levels))}

    def with_repeats(self, i: int, judged: float, second: float) -> float:
        """Signal ``i``'s value as judged: ``second``, the second most extreme value of its window in
        its direction, when it reaches the rule's ``repeated_level`` and lies further out than
        ``judged``; else ``judged``."""
        level = self.repeated_level_[i] if self.repeated_level_ is not None else math.nan
        sign = self.direction_[i]
        if math.isnan(level) or not sign * second >= sign * level:  # NaN: fewer than two known steps
            return judged
        return second if not sign * judged > sign * second else judged

    def with_repeats_rows(self, i: int, judged: np.ndarray, second: np.ndarray) -> np.ndarray:
        """:meth:`with_repeats` for signal ``i`` over many rows at once."""
        level = self.repeated_level_[i] if self.repeated_level_ is not None else math.nan
        sign = self.direction_[i]
        with np.errstate(invalid="ignore"):
            take = (sign * second >= sign * level) & ~(sign * judged > sign * second)
        return np.where(take, second, judged)

    def out_of_range(
        self, values: Sequence[float] | np.ndarray, slow: Sequence[float] | np.ndarray | None = None
    ) -> list[int]:
        """Indices of the signals with a rule whose value (or, for ``sustained`` ones, whose median over
        the longer window, ``slow``) lies past their training range, in their direction, by more than
        their minimum."""
        return [int(i) for i in np.flatnonzero(self.out_of_range_mask(values, slow))]

    def out_of_range_mask(
        self, values: Sequence[float] | np.ndarray, slow: Sequence[float] | np.ndarray | None = None
    ) -> np.ndarray:
        """:meth:`out_of_range` as a mask of ``values``' shape: one row of signals, or many."""
        v = np.asarray(values, dtype=np.float64)
        hit = np.zeros(v.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            if self.low_ is not None and self.high_ is not None and self.ranged_.any():
                hit |= (self._past(v, self.low_, self.high_) > self.minimum_) & self.ranged_
            sustained = self.sustained_
            if slow is not None and sustained is not None and sustained.any() and self.slow_high_ is not None:
                lo, hi = self.slow_low_, self.slow_high_
                long_past = self._past(np.asarray(slow, dtype=np.float64), lo, hi) > self.minimum_
                still_past = self._past(v, lo, hi) > self.minimum_
                hit |= long_past & still_past & sustained
        return hit  # NaN (no rule, no value, no range) is never a hit

    def _past(self, v: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """How far ``v`` lies past ``[low, high]`` in each signal's direction (negative: inside)."""
        above, below = v - high, low - v
        return np.where(self.direction_ > 0, above, np.where(self.direction_ < 0, below, np.fmax(above, below)))


def _toward(d: float, direction: int) -> float:
    """A deviation ``d`` from the expected level, counted in the direction that can hurt (``both``:
    either way); negative when it points the harmless way."""
    return d if direction > 0 else -d if direction < 0 else abs(d)


def _toward_rows(d: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """:func:`_toward` for arrays of deviations and their signals' directions."""
    return np.where(direction > 0, d, np.where(direction < 0, -d, np.abs(d)))
