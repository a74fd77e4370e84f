"""Raw detector score -> calibrated score in [0, 1], fitted on (cross-fitted) training scores."""

from __future__ import annotations

import bisect
import math
from typing import Any, Self

import numpy as np

from vigil.errors import DataError

# The largest surprisal a calibrated score can carry; 1 - exp(-34.5) is the last float64 below 1.
MAX_SURPRISAL = 34.5


class TailCalibrator:
    """Empirical CDF of training scores with an exponential tail beyond the ``tail`` quantile.

    A plain empirical CDF saturates at 1 for every score above the training maximum, so a score
    slightly beyond normal and one far beyond it would look the same; the exponential tail (the
    peaks-over-threshold model with shape 0, fitted by the mean excess) keeps them apart. The
    calibrated value ``u`` is monotone in the raw score, continuous at the tail quantile, and
    :meth:`surprisal` ``-log(1 - u)`` is linear in the raw score inside the tail.

    Examples
    --------
    >>> import numpy as np
    >>> cal = TailCalibrator(tail=0.5).fit(np.arange(1.0, 101.0))
    >>> [round(float(v), 3) for v in cal(np.array([0.0, 50.5, 1000.0]))]
    [0.0, 0.5, 1.0]
    """

    def __init__(self, tail: float = 0.95) -> None:
        self.tail = tail

    def fit(self, scores: np.ndarray) -> Self:
        s = np.sort(np.asarray(scores, dtype=np.float64))
        s = s[np.isfinite(s)]
        if len(s) < 10:
            raise DataError(f"need at least 10 finite training scores to calibrate, got {len(s)}")
        self.sorted_ = s
        self.q_ = float(np.quantile(s, self.tail))
        self.n_below_q_ = int(np.searchsorted(s, self.q_, side="right"))
        excess = s[s > self.q_] - self.q_
        spread = float(np.std(s)) or 1.0
        # Mean excess is the MLE of an exponential tail; a floor keeps a degenerate tail usable.
        self.beta_ = max(float(excess.mean()) if len(excess) else 0.0, 1e-3 * spread, 1e-12)
        self.__dict__.pop("_sorted_list", None)
        return self

    def __getstate__(self) -> dict[str, Any]:
        # The plain-float copy of ``sorted_`` is rebuilt on first use; a saved model need not carry it twice.
        state = dict(self.__dict__)
        state.pop("_sorted_list", None)
        return state

    def surprisal(self, scores: np.ndarray) -> np.ndarray:
        """``-log(1 - u)`` of the calibrated score ``u``: 0 for typical, ~3 at the tail quantile."""
        s = np.asarray(scores, dtype=np.float64)
        p = self.tail
        below = p * np.searchsorted(self.sorted_, s, side="right") / max(self.n_below_q_, 1)
        body = -np.log1p(-np.minimum(below, p))
        tail = -np.log1p(-p) + (s - self.q_) / self.beta_
        z = np.where(s > self.q_, tail, body)
        return np.clip(np.nan_to_num(z, nan=0.0), 0.0, MAX_SURPRISAL)

    def surprisal_one(self, score: float) -> float:
        """:meth:`surprisal` of a single score in plain float arithmetic: the same number, but for the
        last bit where numpy's log1p is vectorised (AVX-512) and libm's is not.

        Scoring one row per step is the serving path; for one value numpy's per-call overhead (a dozen
        ufunc calls, ~50 us) dwarfs the work. ``bisect_right`` is ``searchsorted(side="right")``, NaN
        sorting last as numpy sorts it; the formulas are :meth:`surprisal`'s, operation for operation.
        """
        ordered = self.__dict__.get("_sorted_list")
        if ordered is None:
            ordered = self.__dict__["_sorted_list"] = self.sorted_.tolist()
        p = self.tail
        rank = len(ordered) if score != score else bisect.bisect_right(ordered, score)
        if score > self.q_:
            z = -math.log1p(-p) + (score - self.q_) / self.beta_
        else:
            z = -math.log1p(-min(p * rank / max(self.n_below_q_, 1), p))
        if z != z:
            return 0.0
        return min(max(z, 0.0), MAX_SURPRISAL)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return -np.expm1(-self.surprisal(scores))
