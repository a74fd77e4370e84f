"""Streaming scoring of one entity with a fitted :class:`~vigil.detectors.pipeline.AnomalyPipeline`.

The stream reproduces the pipeline's batch scoring step by step (``score_frame`` and a stream over
the same rows agree: tests/unit/detectors), holding only what the next step needs: the signal and
feature windows, the recent scores and raw values the significance and range rules judge, the alarm
state and the live threshold. It is the pipeline's companion and reads its fitted stages directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.contracts import StepResult
from vigil.detectors.combination import to_unit

if TYPE_CHECKING:
    from vigil.detectors.pipeline import AnomalyPipeline


class PipelineStream:
    """One entity's incremental scorer (implements :class:`vigil.contracts.StreamScorer`).

    Missing steps (a timestamp more than one step after the last) are replayed as NaN rows, exactly
    as batch scoring regrids a frame, so the two agree, as long as the gap is within what the model
    remembers (:meth:`AnomalyPipeline.memory_seconds`, at most ``MAX_REPLAY_STEPS``). A longer gap
    (an outage, a restart from an old snapshot) starts the features afresh: replaying it would cost
    time under the caller's lock and change nothing the model still remembers. The live threshold
    keeps what it learned. Out-of-order samples are ignored.
    """

    MAX_REPLAY_STEPS = 600

    def __init__(self, model: AnomalyPipeline) -> None:
        self.model = model
        self._live = model.new_live_threshold()
        self._names = model.metric_names_
        self._max_replay = min(self.MAX_REPLAY_STEPS, math.ceil(model.memory_seconds() / model.step_))
        self._start()

    def _start(self) -> None:
        m = self.model
        self._signals = m.signals_.new_stream()
        self._features = m.extractor_.new_stream()
        self._agg = m._aggregator()
        self._recent: list[float] = []
        # gated_smoothing: per recent step, its surprisal, whether a signal had moved enough to matter
        # then, and the signal its surprise was mostly about.
        self._tagged: list[tuple[float, bool, int]] = []
        self._recent_values: list[np.ndarray] = []  # the raw metrics of the last significance_window steps
        # Metrics judged over a longer window than the rest (window_s rules).
        self._long = _ColumnMedians([(w, cols.tolist()) for w, cols in m._long_judged().items()])
        self._rules = getattr(m, "significance_", None)
        # (position in _long, metric column, direction) of the signals with a repeated_level rule.
        repeats = self._rules.repeats() if self._rules is not None else {}
        self._repeats = [(k, c, repeats[c]) for k, c in enumerate(self._long.columns) if c in repeats]
        self._last_ts: float | None = None
        # The metrics a ``sustained`` rule judges on their longer median; most streams have none or one.
        sustained = getattr(self._rules, "sustained_", None)
        if not m.sustained_window or sustained is None:
            sustained = np.zeros(0, dtype=bool)
        self._slow = _ColumnMedians([(m._slow_window(), np.flatnonzero(sustained).tolist())])

    @property
    def threshold_z(self) -> float:
        """The surprisal this stream alarms above now (the live one, else the training one)."""
        return self._live.value if self._live is not None else self.model.threshold_z_

    def update(self, timestamp: float, values: Mapping[str, float]) -> StepResult | None:
        m = self.model
        ts = float(timestamp)
        if self._last_ts is not None:
            gap = (ts - self._last_ts) / m.step_
            if gap < 0.5:
                return None
            if gap > self._max_replay:
                self._start()
            else:
                nan_row = np.full(len(self._names), np.nan)
                for k in range(1, int(round(gap))):
                    self._step(self._last_ts + k * m.step_, nan_row)
        x = np.array([float(values.get(n, np.nan)) for n in self._names], dtype=np.float64)
        return self._step(ts, x)

    def _step(self, ts: float, x: np.ndarray) -> StepResult:
        m = self.model
        self._last_ts = ts
        sig = self._signals.update(ts, x)
        feats = self._features.update(ts, sig)
        Z = m.standardize(feats[None])
        z = m.score_surprisal(Z)[0]
        combined = float(m.combine_surprisal(z[None])[0])
        self._recent = (self._recent + [combined])[-max(m.smooth, 1) :]
        smoothed = max(self._recent)
        self._recent_values = (self._recent_values + [sig[: len(self._names)]])[-max(int(m.significance_window), 1) :]
        threshold = self.threshold_z
        recent = _recent_median(np.stack(self._recent_values))
        if self._long.columns:
            self._long.push(sig)
            recent = recent.copy()  # one kept row comes back as itself, not a copy
            rules = self._rules
            for column, median in self._long.medians():
                recent[column] = median if rules is None else rules.less_extreme(column, recent[column], median)
            for k, column, sign in self._repeats:
                recent[column] = rules.with_repeats(column, recent[column], self._long.second_most(k, sign))
        slow = None
        if self._slow.columns:
            self._slow.push(sig)
            slow = np.full(len(recent), np.nan)
            for column, median in self._slow.medians():
                slow[column] = median
        if m.gates_smoothing:
            # The smoothing carries a step's surprisal forward only while it is still about what moved:
            # from steps at which a signal had moved enough to matter, or to a step at which the
            # signal that step's surprise was mostly about has moved (a latency median over 5 s
            # opens the gate a few steps after the slow requests that surprised the model). A fault's
            # last steps leaving the 30-step windows surprise the model about latency; a demand
            # trough crossing the request rate's minimum just then must not inherit that surprise.
            moved = m.significant_signals(Z[0], recent) if smoothed > m.threshold_z_ else []
            # A step at or under the training threshold (which live thresholds never go below) can
            # never carry the smoothed surprisal over the threshold: what it was about is not needed.
            top = int(np.argmax(m._metric_attribution(Z[0]))) if combined > m.threshold_z_ else -1
            self._tagged = (self._tagged + [(combined, bool(moved), top)])[-max(m.smooth, 1) :]
            carried = [c for c, was_open, about in self._tagged if moved and (was_open or about in moved)]
            surprised = bool(carried) and max(carried) > threshold
        else:
            surprised = smoothed > threshold and m.practically_significant(Z[0], recent)
        above = surprised or bool(m.out_of_range_mask(recent, slow).any())
        alarm = self._agg.step(above)
        if self._live is not None:
            self._live.update(smoothed, alarm)
        det = {n: float(to_unit(z[j])) for j, n in enumerate(m.scorers_)}
        contrib = m.contributions(feats, sig, judged=recent) if above or alarm else ()
        return StepResult(
            ts, float(to_unit(smoothed)), bool(above), bool(alarm), det, contrib, float(to_unit(threshold))
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "signals": self._signals.state_dict(),
            "features": self._features.state_dict(),
            "alarm": self._agg.state_dict(),
            "recent": list(self._recent),
            "tagged": [list(t) for t in self._tagged],
            "recent_values": [v.tolist() for v in self._recent_values],
            "slow_values": [list(v) for v in self._slow.rows],
            "long_values": [list(v) for v in self._long.rows],
            "last_ts": self._last_ts,
            "live": self._live.state_dict() if self._live is not None else None,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._signals.load_state(state["signals"])
        self._features.load_state(state["features"])
        self._agg.load_state(state["alarm"])
        self._recent = [float(v) for v in state["recent"]]
        self._tagged = [(float(c), bool(o), int(a)) for c, o, a in state.get("tagged", [])]
        self._recent_values = [np.asarray(v, dtype=np.float64) for v in state.get("recent_values", [])]
        self._slow.rows = [[float(x) for x in v] for v in state.get("slow_values", [])]
        self._long.rows = [[float(x) for x in v] for v in state.get("long_values", [])]
        self._last_ts = state["last_ts"]
        if self._live is not None and state.get("live"):
            self._live.load_state(state["live"])


class _ColumnMedians:
    """The last values of a few metric columns, each with the window its median is taken over.

    Plain floats: a stream has a handful of such columns, and stacking the rows for numpy cost
    ~0.1 ms a step where this costs ~5 us (measured).
    """

    def __init__(self, groups: list[tuple[int, list[int]]]) -> None:
        self.columns = [c for _window, cols in groups for c in cols]
        self.windows = [window for window, cols in groups for _c in cols]
        self.keep = max(self.windows, default=0)
        self.rows: list[list[float]] = []

    def push(self, sig: np.ndarray) -> None:
        self.rows = (self.rows + [sig[self.columns].tolist()])[-self.keep :]

    def medians(self) -> list[tuple[int, float]]:
        """``(column, median over its window)`` for each column."""
        return [
            (column, _median_of_known([row[k] for row in self.rows[-window:]]))
            for k, (column, window) in enumerate(zip(self.columns, self.windows, strict=True))
        ]

    def second_most(self, k: int, sign: int) -> float:
        """The second largest (``sign`` 1) or smallest (-1) known value of column ``k`` over its
        window; NaN when fewer than two are known."""
        known = sorted(sign * row[k] for row in self.rows[-self.windows[k] :] if row[k] == row[k])
        return sign * known[-2] if len(known) >= 2 else math.nan


def _median_of_known(values: list[float]) -> float:
    """The median of the values that are not NaN (NaN when none is), as ``np.nanmedian`` gives it."""
    known = sorted(v for v in values if v == v)
    n = len(known)
    return (known[(n - 1) // 2] + known[n // 2]) / 2 if n else math.nan


def _recent_median(rows: np.ndarray) -> np.ndarray:
    """Per column, the median of the rows that are known (NaN where none is): ``np.nanmedian``'s
    result, without its masked-array path for small inputs, which cost 0.5 ms of the ~1 ms a
    streaming step takes (`make bench`)."""
    if len(rows) == 1:
        return rows[0]
    ordered = np.sort(rows, axis=0)  # NaN sorts last
    known = np.count_nonzero(~np.isnan(rows), axis=0)
    cols = np.flatnonzero(known)
    out = np.full(rows.shape[1], np.nan)
    lower, upper = ordered[(known[cols] - 1) // 2, cols], ordered[known[cols] // 2, cols]
    out[cols] = (lower + upper) / 2
    return out
