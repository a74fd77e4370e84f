"""Per-second rates of Prometheus counters, in batch and one sample at a time.

Both forms follow Prometheus' counter semantics: a value lower than the one before it is a counter
reset (the process restarted and counted up from zero), so the increase over that interval is the
new value itself. They differ from PromQL ``rate()`` on purpose in one way: the rate is taken
between each sample and the one immediately before it, never extrapolated over a window, so the
batch and incremental forms give bit-identical results and a stream can be replayed exactly.

A rate is NaN (never zero: zero is a real, meaningful rate) where it cannot be known:

* for the first sample, which has nothing before it;
* for any sample that is NaN, including Prometheus stale markers, and for the sample after it;
* across a gap longer than ``max_gap`` seconds, where the counter may have reset and caught up
  unseen;
* where the timestamp does not move forward (duplicate or out-of-order sample).

>>> import numpy as np
>>> counter_rate([10.0, 20.0, 5.0, 7.0], [0.0, 1.0, 2.0, 4.0]).tolist()
[nan, 10.0, 5.0, 1.0]
>>> r = CounterRate()
>>> [r.update(t, v) for t, v in [(0.0, 10.0), (1.0, 20.0), (2.0, 5.0), (4.0, 7.0)]]
[nan, 10.0, 5.0, 1.0]
"""

from __future__ import annotations

import math
import struct

import numpy as np
from numpy.typing import ArrayLike

# Prometheus' lookback delta: after this long without a sample a series counts as gone, so a
# rate across a longer gap would hide whatever happened in between.
DEFAULT_MAX_GAP_S = 300.0

# Prometheus marks a series as ended by writing this exact NaN payload; plain NaN is a real value.
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


def is_stale_marker(value: float) -> bool:
    """True only for Prometheus' stale-marker NaN, not for an ordinary NaN sample."""
    return struct.unpack("<Q", struct.pack("<d", value))[0] == STALE_NAN_BITS


def _as_seconds(timestamps: ArrayLike) -> np.ndarray:
    ts = np.asarray(timestamps)
    if np.issubdtype(ts.dtype, np.datetime64):
        return ts.astype("datetime64[ns]").astype(np.int64) / 1e9
    return ts.astype(np.float64)


def counter_rate(values: ArrayLike, timestamps: ArrayLike, *, max_gap: float = DEFAULT_MAX_GAP_S) -> np.ndarray:
    """Per-second rate of a counter between consecutive samples.

    Parameters
    ----------
    values : array-like of float
        Raw counter samples, oldest first. NaN (including stale markers) marks missing samples.
    timestamps : array-like of float seconds or datetime64
        One per value.
    max_gap : float
        Longest interval in seconds over which a rate is still computed.

    Returns
    -------
    numpy.ndarray of float64, same length as ``values``; NaN where the rate is unknown.
    """
    v = np.asarray(values, dtype=np.float64)
    t = _as_seconds(timestamps)
    if v.shape != t.shape or v.ndim != 1:
        raise ValueError(f"values and timestamps must be 1-D and equally long, got {v.shape} and {t.shape}")
    out = np.full(v.shape, np.nan)
    if v.size < 2:
        return out
    prev, cur = v[:-1], v[1:]
    dt = np.diff(t)
    ok = np.isfinite(prev) & np.isfinite(cur) & (dt > 0) & (dt <= max_gap)
    # NaN arithmetic on masked-out entries is expected and discarded by ``ok``; an increase over a
    # sub-normal interval overflows to inf, as the incremental form's Python floats do.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        increase = np.where(cur >= prev, cur - prev, cur)
        out[1:] = np.where(ok, increase / np.where(ok, dt, 1.0), np.nan)
    return out


class CounterRate:
    """Incremental :func:`counter_rate`: feed samples in arrival order, get the rate at each.

    Parameters
    ----------
    max_gap : float
        Longest interval in seconds over which a rate is still computed.
    """

    def __init__(self, max_gap: float = DEFAULT_MAX_GAP_S) -> None:
        self.max_gap = max_gap
        self._last_ts = math.nan
        self._last_value = math.nan

    def update(self, ts: float, value: float) -> float:
        """Record a sample at ``ts`` (unix seconds) and return the rate since the previous one."""
        prev_ts, prev_value = self._last_ts, self._last_value
        self._last_ts, self._last_value = float(ts), float(value)
        dt = self._last_ts - prev_ts
        if not (math.isfinite(prev_value) and math.isfinite(self._last_value) and 0 < dt <= self.max_gap):
            return math.nan
        cur = self._last_value
        increase = cur - prev_value if cur >= prev_value else cur
        return increase / dt

    def reset(self) -> None:
        """Forget the previous sample, e.g. when the series is known to have restarted."""
        self._last_ts = math.nan
        self._last_value = math.nan

    def state_dict(self) -> dict[str, float]:
        return {"max_gap": self.max_gap, "last_ts": self._last_ts, "last_value": self._last_value}

    def load_state(self, state: dict[str, float]) -> None:
        self.max_gap = float(state["max_gap"])
        self._last_ts = float(state["last_ts"])
        self._last_value = float(state["last_value"])
