"""Combining calibrated detector scores: plain functions over an ``(n_samples, n_detectors)`` matrix.

Scores arrive as surprisals ``z = -log(1 - u)`` of calibrated values ``u`` (see
:class:`~vigil.detectors.calibration.TailCalibrator`) and leave as a combined surprisal; callers map
it back to [0, 1] with :func:`to_unit`.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def weighted_mean(z: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted mean of surprisals (a soft AND: every weighted detector must agree)."""
    w = np.full(z.shape[1], 1.0 / z.shape[1]) if weights is None else np.asarray(weights) / np.sum(weights)
    return z @ w


def maximum(z: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Largest surprisal among detectors with positive weight (an OR: any detector may alarm)."""
    if weights is not None:
        z = z[:, np.asarray(weights) > 0]
    return z.max(axis=1)


def rank_mean(z: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted mean of calibrated values ``u`` (ranks against training), as a surprisal."""
    u = -np.expm1(-z)
    w = np.full(z.shape[1], 1.0 / z.shape[1]) if weights is None else np.asarray(weights) / np.sum(weights)
    return -np.log1p(-np.minimum(u @ w, 1.0 - 1e-15))


COMBINERS = {"mean": weighted_mean, "max": maximum, "rank": rank_mean}


def to_unit(z: np.ndarray) -> np.ndarray:
    """Surprisal -> score in [0, 1] (monotone)."""
    return -np.expm1(-np.asarray(z, dtype=np.float64))


def agreement_weights(z: np.ndarray, floor: float = 0.05) -> np.ndarray:
    """Label-free weights: each detector's mean Spearman correlation with the others on training.

    Detectors that rank training steps like the consensus get more weight, an erratic one less;
    ``floor`` keeps every detector in play. With a single detector the weight is 1.

    >>> import numpy as np
    >>> z = np.array([[0.0, 0.1, 3.0], [1.0, 1.1, 0.0], [2.0, 2.2, 1.0], [3.0, 2.9, 2.0]])
    >>> w = agreement_weights(z)
    >>> bool(w[0] > w[2] and w[1] > w[2])
    True
    """
    d = z.shape[1]
    if d == 1:
        return np.ones(1)
    ranks = rankdata(z, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.nan_to_num(np.corrcoef(ranks, rowvar=False), nan=0.0)
    mean_other = (rho.sum(axis=1) - 1.0) / (d - 1)
    w = np.maximum(mean_other, 0.0) + floor
    return w / w.sum()
