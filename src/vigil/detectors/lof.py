"""Local Outlier Factor in novelty mode (Breunig et al. 2000), on a bounded training subsample."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import LocalOutlierFactor

from vigil.detectors.base import BaseDetector, subsample


class LOFDetector(BaseDetector):
    """LOF fitted on at most ``max_train`` rows.

    Exact LOF needs every training point's k nearest neighbours, which is quadratic in the training
    size; a random subsample of a few thousand rows keeps fitting and scoring linear in the number
    of scored rows while still covering the normal operating modes of one machine.

    Parameters
    ----------
    n_neighbors : int
        Neighbourhood size.
    max_train : int
        Largest training subsample.
    random_state : int or None
        Seed of the subsample.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [0.2], [0.15], [0.05], [5.0]])
    >>> det = LOFDetector(n_neighbors=2).fit(X[:5])
    >>> bool(det.score_samples(X)[5] > det.score_samples(X)[:5].max())
    True
    """

    def __init__(self, n_neighbors: int = 20, max_train: int = 3000, random_state: int | None = 0) -> None:
        self.n_neighbors = n_neighbors
        self.max_train = max_train
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> None:
        Xs = subsample(X, self.max_train, self.random_state)
        self.model_ = LocalOutlierFactor(n_neighbors=min(self.n_neighbors, len(Xs) - 1), novelty=True).fit(Xs)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return -self.model_.score_samples(X)
