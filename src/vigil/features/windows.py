"""Window statistics shared by the batch and the incremental feature paths.

Every function takes an array of windows shaped ``(..., w)`` (the last axis is time, oldest first)
and reduces the last axis. The batch path hands them ``sliding_window_view`` chunks of a whole
series, the incremental path hands them the one window held in its ring buffer, so both run the
very same arithmetic and agree to float rounding. Windows may contain NaN (missing samples, or the
padding before the first sample): every statistic ignores NaN and is NaN only when the window has
no usable sample, so a gap never turns into a zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Scales a median absolute deviation to a standard deviation for normally distributed data.
MAD_TO_STD = 1.4826

Stat = Callable[[np.ndarray], np.ndarray]


def nan_reduce(fn: Callable[..., np.ndarray], a: np.ndarray, axis: int = -1, **kwargs: Any) -> np.ndarray:
    """``fn`` (numpy's ``nanmean``, ``nanmedian``, ``nanquantile``, ...) over ``axis``; NaN for a slice
    with no sample (series start, long gaps), without numpy's warning about it.

    Silencing that warning would take ``warnings.catch_warnings()``, which is not thread-safe before
    Python 3.14: a training thread beside a scoring thread ran with the other's filters, and under the
    tests' error filter the warning killed it. So empty slices never reach numpy.
    """
    a = np.asarray(a, dtype=np.float64)
    if a.shape[axis] == 0:
        shape = list(a.shape)
        shape[axis] = 1
        a = np.full(shape, np.nan)
    empty = np.isnan(a).all(axis=axis)
    if not empty.any():
        return fn(a, axis=axis, **kwargs)
    out = np.array(fn(np.where(np.expand_dims(empty, axis), 0.0, a), axis=axis, **kwargs), dtype=np.float64)
    if out.ndim == 0:
        return np.float64(np.nan)
    out[..., empty] = np.nan
    return out


def w_mean(a: np.ndarray) -> np.ndarray:
    if not np.isnan(a).any():
        return a.mean(axis=-1)
    return nan_reduce(np.nanmean, a)


def w_std(a: np.ndarray) -> np.ndarray:
    if not np.isnan(a).any():
        return a.std(axis=-1)
    return nan_reduce(np.nanstd, a)


def w_min(a: np.ndarray) -> np.ndarray:
    if not np.isnan(a).any():
        return a.min(axis=-1)
    return nan_reduce(np.nanmin, a)


def w_max(a: np.ndarray) -> np.ndarray:
    if not np.isnan(a).any():
        return a.max(axis=-1)
    return nan_reduce(np.nanmax, a)


def w_median(a: np.ndarray) -> np.ndarray:
    if not np.isnan(a).any():
        return np.median(a, axis=-1)
    return nan_reduce(np.nanmedian, a)


def w_quantile(a: np.ndarray, q: float) -> np.ndarray:
    if not np.isnan(a).any():
        return np.quantile(a, q, axis=-1)
    return nan_reduce(np.nanquantile, a, q=q)


def w_mad(a: np.ndarray, med: np.ndarray) -> np.ndarray:
    """Median absolute deviation from ``med`` (the window median, passed in to avoid recomputing)."""
    return w_median(np.abs(a - med[..., None]))


def w_slope(a: np.ndarray) -> np.ndarray:
    """Least-squares slope per step over the window; 0 where fewer than two samples exist."""
    w = a.shape[-1]
    t = np.arange(w, dtype=np.float64)
    valid = ~np.isnan(a)

    def compute() -> np.ndarray:
        n = valid.sum(axis=-1)
        tm = (t * valid).sum(axis=-1) / n
        xm = np.where(valid, a, 0.0).sum(axis=-1) / n
        dt = np.where(valid, t - tm[..., None], 0.0)
        num = (dt * np.where(valid, a - xm[..., None], 0.0)).sum(axis=-1)
        den = (dt * dt).sum(axis=-1)
        out = num / den
        out[n < 2] = np.nan
        out[(n >= 2) & (den == 0)] = 0.0
        return out

    with np.errstate(invalid="ignore", divide="ignore"):
        return compute()


def w_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of paired windows over jointly present samples; NaN if either is flat."""
    valid = ~(np.isnan(a) | np.isnan(b))

    def compute() -> np.ndarray:
        n = valid.sum(axis=-1)
        am = np.where(valid, a, 0.0).sum(axis=-1) / n
        bm = np.where(valid, b, 0.0).sum(axis=-1) / n
        da = np.where(valid, a - am[..., None], 0.0)
        db = np.where(valid, b - bm[..., None], 0.0)
        cov = (da * db).sum(axis=-1)
        var = (da * da).sum(axis=-1) * (db * db).sum(axis=-1)
        out = cov / np.sqrt(var)
        # Exactly flat windows have no defined correlation; near-flat ones are rounding noise.
        out[~(var > 1e-24)] = np.nan
        return out

    with np.errstate(invalid="ignore", divide="ignore"):
        return compute()


def rolling(x: np.ndarray, w: int, stat: Stat, chunk: int = 4096) -> np.ndarray:
    """Apply ``stat`` to the trailing window of length ``w`` at every row of ``x`` ``(T, M)``.

    The first rows see partial windows (NaN-padded), exactly as a fresh stream does. Work goes in
    row chunks so the NaN-aware reductions never copy more than ``chunk * M * w`` values.
    """
    x = np.asarray(x, dtype=np.float64)
    pad = np.full((w - 1,) + x.shape[1:], np.nan)
    view = sliding_window_view(np.concatenate([pad, x], axis=0), w, axis=0)
    out = np.empty(x.shape, dtype=np.float64)
    # The padded head always goes through the NaN-aware branch; the rest usually takes the fast one.
    bounds = [0, min(w - 1, len(x))] + list(range(w - 1 + chunk, len(x), chunk)) + [len(x)]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if hi > lo:
            out[lo:hi] = stat(view[lo:hi])
    return out


def rolling_pair(x: np.ndarray, y: np.ndarray, w: int, chunk: int = 4096) -> np.ndarray:
    """Rolling :func:`w_corr` between the columns of ``x`` and ``y`` (both ``(T, P)``)."""
    pad = np.full((w - 1,) + x.shape[1:], np.nan)
    vx = sliding_window_view(np.concatenate([pad, x], axis=0), w, axis=0)
    vy = sliding_window_view(np.concatenate([pad, y], axis=0), w, axis=0)
    out = np.empty(x.shape, dtype=np.float64)
    for lo in range(0, len(x), chunk):
        out[lo : lo + chunk] = w_corr(vx[lo : lo + chunk], vy[lo : lo + chunk])
    return out
