"""Reference statistics and the two distribution distances Vigil uses for drift: PSI and KS.

A model stores, per feature, a compact summary of its training distribution (:class:`Reference`):
quantile-bin edges with the observed share of training values in each bin (for PSI) and a
quantile sketch (for KS). Storing the summary instead of the training data keeps the model card
small and lets serving compare a live window against training without touching the archive.

>>> import numpy as np
>>> ref = Reference.from_samples(np.arange(1000.0))
>>> round(psi(ref, np.arange(1000.0)), 6)
0.0
>>> psi(ref, np.arange(1000.0) + 500.0) > 0.25
True
>>> round(ks_statistic(ref, np.arange(1000.0)), 2)
0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

# Deciles are the usual PSI binning: fine enough to see a shift, coarse enough that a day of
# 1-minute samples fills every bin.
N_BINS = 10
# 201 points resolve a CDF to 0.5 %, far below any KS statistic worth alerting on.
N_QUANTILES = 201
# Empty bins would make PSI infinite; this floor is the conventional smoothing.
_EPS = 1e-4


@dataclass(frozen=True)
class Reference:
    """Summary of one feature's (or the score's) training distribution."""

    edges: tuple[float, ...]  # interior bin edges; len(edges) + 1 bins
    probs: tuple[float, ...]  # share of training values per bin
    quantiles: tuple[float, ...]  # N_QUANTILES evenly spaced quantiles, for KS
    mean: float
    std: float
    n: int

    @classmethod
    def from_samples(cls, values: ArrayLike, n_bins: int = N_BINS) -> Reference:
        x = _finite(values)
        if x.size == 0:
            return cls(edges=(), probs=(1.0,), quantiles=(), mean=float("nan"), std=float("nan"), n=0)
        edges = _edges(x, n_bins)
        probs = _bin_shares(x, edges)
        quantiles = np.quantile(x, np.linspace(0, 1, N_QUANTILES))
        return cls(
            edges=tuple(float(e) for e in edges),
            probs=tuple(float(p) for p in probs),
            quantiles=tuple(float(q) for q in quantiles),
            mean=float(x.mean()),
            std=float(x.std()),
            n=int(x.size),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": list(self.edges),
            "probs": list(self.probs),
            "quantiles": list(self.quantiles),
            "mean": self.mean,
            "std": self.std,
            "n": self.n,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reference:
        return cls(
            edges=tuple(float(v) for v in data["edges"]),
            probs=tuple(float(v) for v in data["probs"]),
            quantiles=tuple(float(v) for v in data["quantiles"]),
            mean=float(data["mean"]),
            std=float(data["std"]),
            n=int(data["n"]),
        )


def psi(reference: Reference, values: ArrayLike) -> float:
    """Population stability index of ``values`` against the reference bins (NaN when either is empty).

    Conventional reading: < 0.1 no shift, 0.1-0.25 moderate, > 0.25 significant.
    """
    x = _finite(values)
    if x.size == 0 or reference.n == 0:
        return float("nan")
    expected = np.clip(np.asarray(reference.probs), _EPS, None)
    actual = np.clip(_bin_shares(x, np.asarray(reference.edges)), _EPS, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_statistic(reference: Reference, values: ArrayLike) -> float:
    """Two-sample Kolmogorov-Smirnov statistic between the reference quantile sketch and ``values``."""
    return ks_test(reference, values)[0]


def ks_test(reference: Reference, values: ArrayLike) -> tuple[float, float]:
    """KS statistic and p-value; the p-value treats the sketch as a sample of N_QUANTILES points."""
    x = _finite(values)
    if x.size == 0 or reference.n == 0:
        return float("nan"), float("nan")
    result = stats.ks_2samp(np.asarray(reference.quantiles), x)
    return float(result.statistic), float(result.pvalue)


def references_from_frame(columns: dict[str, ArrayLike]) -> dict[str, Reference]:
    """One :class:`Reference` per named column."""
    return {name: Reference.from_samples(values) for name, values in columns.items()}


def _edges(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Decile edges, with a bin of its own for each value that holds a large share of the data.

    Server metrics are often zero-inflated (error counters, swap, queue lengths sit at 0 most of
    the time). Plain quantile edges collapse to ``[0]`` there and one bin swallows both the zeros
    and every non-zero value, so a counter going from "always 0" to "often 5" shows no drift. A
    point bin ``[v, nextafter(v))`` for each such value keeps the mass point apart from the rest.
    """
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)[1:-1]))
    heavy = [e for e in edges if np.mean(x == e) >= 0.5 / n_bins]
    if heavy:
        edges = np.unique(np.concatenate([edges, np.nextafter(np.asarray(heavy), np.inf)]))
    return edges


def _bin_shares(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # side="right": a value equal to an edge falls in the bin above it, the same at fit and at
    # comparison time, which is what matters for features that sit exactly on an edge (zeros).
    idx = np.searchsorted(edges, x, side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)
    return counts / counts.sum()


def _finite(values: ArrayLike) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[np.isfinite(x)]
