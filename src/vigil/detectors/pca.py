"""PCA reconstruction error: the classic strong baseline on server metrics (Quo Vadis TAD, 2024)."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from vigil.detectors.base import BaseDetector


class PCADetector(BaseDetector):
    """Squared distance of each standardised row to the principal subspace of the training data.

    Parameters
    ----------
    n_components : float or int
        Variance fraction (float < 1) or number of components to keep.
    standardize : bool
        Standardise each column with training mean and std first (constant columns get std 1).

    Examples
    --------
    >>> import numpy as np
    >>> from vigil.config import load_settings
    >>> X = np.loadtxt(load_settings().data_dir / "smd" / "train" / "machine-1-2.txt", delimiter=",")[:3000]
    >>> det = PCADetector(n_components=0.9).fit(X[:2000])
    >>> bool((det.score_samples(X[2000:]) >= 0).all())
    True
    """

    def __init__(self, n_components: float | int = 0.9, standardize: bool = True) -> None:
        self.n_components = n_components
        self.standardize = standardize

    def _fit(self, X: np.ndarray) -> None:
        self.mean_ = X.mean(axis=0) if self.standardize else np.zeros(X.shape[1])
        std = X.std(axis=0) if self.standardize else np.ones(X.shape[1])
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        n = self.n_components
        if isinstance(n, int | np.integer):
            n = min(int(n), X.shape[1], len(X))
        Z = (X - self.mean_) / self.scale_
        if float(Z.var(axis=0).sum()) <= 1e-24:
            # Constant training data has no principal subspace; every departure is residual.
            self.center_ = Z.mean(axis=0)
            self.components_ = np.zeros((0, X.shape[1]))
            self.model_ = None
            return
        self.model_ = pca = PCA(n_components=n, svd_solver="full").fit(Z)
        self.center_ = pca.mean_
        self.components_ = pca.components_
        self.explained_variance_ratio_ = pca.explained_variance_ratio_

    def _score(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.mean_) / self.scale_ - self.center_
        comps = self.components_
        return ((Z - (Z @ comps.T) @ comps) ** 2).sum(axis=1)
