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
    >>> from vigil.config import load_settings
    >>> X = np.loadtxt(load_settings().data_dir / "smd" / "train" / "machine-1-2.txt", delimiter=",")[:3000]
    >>> det = LOFDetector(max_train=1000).fit(X[:2000])
    >>> det.fit_X_.shape
    (1000, 38)
    """

    def __init__(self, n_neighbors: int = 20, max_train: int = 3000, random_state: int | None = 0) -> None:
        self.n_neighbors = n_neighbors
        self.max_train = max_train
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> None:
        Xs = subsample(X, self.max_train, self.random_state)
        self.model_ = LocalOutlierFactor(n_neighbors=min(self.n_neighbors, len(Xs) - 1), novelty=True).fit(Xs)
        # What scoring needs, as plain arrays: a numpy k-NN over a few thousand rows answers one
        # query in well under a millisecond, scikit-learn's dispatcher costs far more per call.
        self.fit_X_ = Xs
        self.fit_sq_ = (Xs * Xs).sum(axis=1)
        self.k_distance_ = self.model_._distances_fit_X_[:, self.model_.n_neighbors_ - 1]
        self.lrd_ = self.model_._lrd

    def _score(self, X: np.ndarray, chunk: int = 1024) -> np.ndarray:
        k = self.model_.n_neighbors_
        out = np.empty(len(X))
        for lo in range(0, len(X), chunk):
            Xc = X[lo : lo + chunk]
            sq = np.maximum((Xc * Xc).sum(axis=1)[:, None] + self.fit_sq_[None] - 2.0 * Xc @ self.fit_X_.T, 0.0)
            nn = np.argpartition(sq, k - 1, axis=1)[:, :k]
            dist = np.sqrt(np.take_along_axis(sq, nn, axis=1))
            reach = np.maximum(dist, self.k_distance_[nn])
            lrd = 1.0 / (reach.mean(axis=1) + 1e-10)
            # The LOF of the query: neighbours' density over its own (>1 means sparser than them).
            out[lo : lo + chunk] = (self.lrd_[nn] / lrd[:, None]).mean(axis=1)
        return out
