"""Isolation Forest (Liu, Ting & Zhou 2008) behind Vigil's detector contract."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from vigil.detectors.base import BaseDetector


class IForestDetector(BaseDetector):
    """Isolation Forest; the score is the negated scikit-learn ``score_samples`` (higher = anomalous).

    Parameters
    ----------
    n_estimators : int
        Number of trees.
    max_samples : int
        Rows per tree; 256 is the paper's default and keeps fitting independent of the data size.
    max_features : float
        Fraction of features each tree sees.
    random_state : int or None
        Seed.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [0.2], [0.1], [5.0]])
    >>> det = IForestDetector(n_estimators=50, random_state=0).fit(X[:4])
    >>> bool(det.score_samples(X)[4] > det.score_samples(X)[:4].max())
    True
    """

    def __init__(
        self, n_estimators: int = 100, max_samples: int = 256, max_features: float = 1.0, random_state: int | None = 0
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> None:
        self.model_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, len(X)),
            max_features=self.max_features,
            random_state=self.random_state,
        ).fit(X)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return -self.model_.score_samples(X)
