"""The contract every Vigil detector follows (scikit-learn style, higher score = more anomalous)."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class BaseDetector(OutlierMixin, BaseEstimator):
    """Base of all detectors: subclasses implement ``_fit(X)`` and ``_score(X)``.

    ``__init__`` of a subclass stores its keyword parameters and nothing else; ``fit`` validates,
    learns attributes ending in ``_`` and returns ``self``; ``score_samples`` returns float64 scores
    where higher means more anomalous. ``decision_function``/``predict`` follow scikit-learn's
    outlier convention (positive/+1 = inlier) with the threshold at the (subsampled) training score quantile
    ``1 - contamination`` so the estimator also works inside plain scikit-learn tooling.
    """

    contamination: float = 0.01

    def fit(self, X: Any, y: Any = None) -> Self:
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        self._fit(X)
        # The offset only serves the scikit-learn-style predict(); a bounded sample estimates it
        # well enough without scoring the whole training set a second time.
        train_scores = self._score(subsample(X, 2000, 0))
        self.offset_ = float(np.quantile(train_scores, 1.0 - self.contamination))
        return self

    def score_samples(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return np.asarray(self._score(X), dtype=np.float64)

    def decision_function(self, X: Any) -> np.ndarray:
        return self.offset_ - self.score_samples(X)

    def predict(self, X: Any) -> np.ndarray:
        return np.where(self.decision_function(X) < 0, -1, 1)

    def _fit(self, X: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def subsample(X: np.ndarray, max_rows: int, seed: int | None) -> np.ndarray:
    """At most ``max_rows`` rows of ``X``, drawn without replacement and kept in time order."""
    if len(X) <= max_rows:
        return X
    rng = np.random.default_rng(seed)
    return X[np.sort(rng.choice(len(X), size=max_rows, replace=False))]
