"""The samples of a window of Prometheus series as flat arrays (collection and quality checks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vigil.prometheus import RangeSeries


@dataclass(frozen=True)
class WindowSamples:
    """Every sample of a set of series inside one window, as flat arrays, series after series in
    time order. ``row[i]`` is series ``i``'s row (-1 when it has no sample in the window); the
    per-row arrays ``starts``/``counts`` locate its samples in ``index``/``ts_ms``/``values``."""

    row: np.ndarray
    index: np.ndarray  # the row of each sample
    ts_ms: np.ndarray
    values: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.counts)


def window_samples(series: Sequence[RangeSeries], start_ms: int, end_ms: int) -> WindowSamples:
    """Flatten ``series`` to the samples inside ``[start_ms, end_ms]`` (timestamps rounded to ms)."""
    lengths = np.fromiter((len(s.timestamps) for s in series), dtype=np.int64, count=len(series))
    if not len(series) or not lengths.sum():
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return WindowSamples(np.full(len(series), -1, np.int64), empty_i, empty_i, empty_f, empty_i, empty_i)
    ts_ms = np.round(np.concatenate([s.timestamps for s in series]) * 1000).astype(np.int64)
    values = np.concatenate([s.values for s in series]).astype(np.float64, copy=False)
    index = np.repeat(np.arange(len(series)), lengths)
    keep = (ts_ms >= start_ms) & (ts_ms <= end_ms)
    index, ts_ms, values = index[keep], ts_ms[keep], values[keep]
    per_series = np.bincount(index, minlength=len(series))
    row = np.full(len(series), -1, np.int64)
    present = np.flatnonzero(per_series)
    row[present] = np.arange(len(present))
    counts = per_series[present]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return WindowSamples(row, row[index], ts_ms, values, starts, counts)
