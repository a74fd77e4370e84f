"""Raw Prometheus series -> the signals features are computed on (counter rates, derived ratios).

Counters are meaningless as levels (they only go up, and reset to zero on restart), so every
counter becomes its per-second rate (:mod:`vigil.features.counters`, Prometheus reset semantics).
Derived signals (disk, network, application) are added when their inputs are present; see
:mod:`vigil.features.derived`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vigil.features.derived import DerivedSpec, find_derived


def looks_like_counter(name: str) -> bool:
    """Prometheus naming convention: counters end in ``_total`` (possibly followed by labels)."""
    base = name.split("{", 1)[0]
    return base.endswith("_total") or base.endswith("_count") or base.endswith("_sum") or base.endswith("_bucket")


class SignalBuilder:
    """Turns raw input columns into signals: counters to rates, plus derived domain signals.

    Parameters
    ----------
    counters : sequence of str or None
        Names of counter columns. ``None`` detects them by the ``_total``/``_count``/``_sum``/
        ``_bucket`` suffix.
    derived : bool
        Add derived disk / network / application signals when their inputs exist.
    """

    def __init__(self, counters: Sequence[str] | None = None, derived: bool = True) -> None:
        self.counters = counters
        self.derived = derived

    def fit(self, metric_names: Sequence[str]) -> SignalBuilder:
        self.metric_names_ = list(metric_names)
        wanted = set(self.counters) if self.counters is not None else {n for n in metric_names if looks_like_counter(n)}
        self.counter_idx_ = np.array([i for i, n in enumerate(metric_names) if n in wanted], dtype=np.int64)
        self.derived_: list[DerivedSpec] = find_derived(self.metric_names_) if self.derived else []
        self.signal_names_ = self.metric_names_ + [d.name for d in self.derived_]
        # Each derived signal is attributed back to the raw metrics it is computed from.
        self.signal_sources_ = [[i] for i in range(len(self.metric_names_))] + [list(d.inputs) for d in self.derived_]
        return self

    def transform(self, values: np.ndarray, ts: np.ndarray) -> np.ndarray:
        from vigil.features.counters import counter_rate

        out = np.array(values, dtype=np.float64, copy=True)
        for i in self.counter_idx_:
            out[:, i] = counter_rate(out[:, i], ts)
        if self.derived_:
            extra = np.stack([d.compute(out) for d in self.derived_], axis=1)
            out = np.concatenate([out, extra], axis=1)
        return out

    def new_stream(self) -> SignalStream:
        return SignalStream(self)


class SignalStream:
    """Incremental :meth:`SignalBuilder.transform`."""

    def __init__(self, builder: SignalBuilder) -> None:
        from vigil.features.counters import CounterRate

        self.sb = builder
        self._rates = [CounterRate() for _ in builder.counter_idx_]

    def update(self, ts: float, values: np.ndarray) -> np.ndarray:
        out = np.array(values, dtype=np.float64, copy=True)
        for r, i in zip(self._rates, self.sb.counter_idx_, strict=True):
            out[i] = r.update(ts, out[i])
        if self.sb.derived_:
            row = out[None]
            extra = np.array([d.compute(row)[0] for d in self.sb.derived_])
            out = np.concatenate([out, extra])
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"rates": [r.state_dict() for r in self._rates]}

    def load_state(self, state: dict[str, Any]) -> None:
        for r, s in zip(self._rates, state["rates"], strict=True):
            r.load_state(s)
