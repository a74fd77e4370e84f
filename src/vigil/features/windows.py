"""Window statistics shared by the batch and the incremental feature paths.

Every function takes an array of windows shaped ``(..., w)`` (the last axis is time, oldest first)
and reduces the last axis. The batch path hands them ``sliding_window_view`` chunks of a whole
series, the incremental path hands them the one window held in its ring buffer, so both run the
very same arithmetic and agree to float rounding. Windows may contain NaN (missing samples, or the
padding before the first sample): every statistic ignores NaN and is NaN only when the window has
no usable sample, so a gap never turns into a zero.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Scales a median absolute deviation to a standard deviation for normally distributed data.
MAD_TO_STD = 1.4826

Stat = Callable[[np.ndarray], np.ndarray]


def _quiet(fn: Callable[[], np.ndarray]) -> np.ndarray:
    # All-NaN windows are expected (series start, long gaps); numpy warns about them, we return NaN.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(invalid="ignore", divide="ignore"):
            return fn()


def w_mean(a: np.ndarray) -> np.ndarray:
    if not np.isnan(a).any():
        return a.mean(axis=-1)
    return _quiet(lambda: np.nanmean(a, axis=-1))


def w_std(a: np.ndarray) -> np.ndarray:
    if not np.isnan(a).any():
        return a.std(axis=-1)
    return _quiet(lambda: np.nanstd(a, axis=-1))


def w_min(a: np.ndarray) -> np.ndarray:
    if not np.isnan(a).any():
        return a.min(axis=-1)
    return _quiet(lambda: np.nanmin(a, axis=-1))


def w_max(a: np.ndarray) -> np.ndarray:
    if not np.isnan(a).any():
        return a.max(axis=-1)
    return _quiet(lambda: np.nanmax(a, axis=-1))


def w_median(a: np.ndarray) -> np.ndarray:
    if not np.isnan(a).any():
        return np.median(a, axis=-1)
    return _quiet(lambda: np.nanmedian(a, axis=-1))


def w_quantile(a: np.ndarray, q: float) -> np.ndarray:
    if not np.isnan(a).any():
        return np.quantile(a, q, axis=-1)
    return _quiet(lambda: np.nanquantile(a, q, axis=-1))


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

    return _quiet(compute)


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

    return _quiet(compute)


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
