"""Isolation Forest (Liu, Ting & Zhou 2008) behind Vigil's detector contract."""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length

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
    >>> from vigil.config import load_settings
    >>> X = np.loadtxt(load_settings().data_dir / "smd" / "train" / "machine-1-2.txt", delimiter=",")[:3000]
    >>> det = IForestDetector(random_state=0).fit(X[:2000])
    >>> det.score_samples(X[2000:]).shape
    (1000,)
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
        self.forest_ = flatten_forest(self.model_)

    def _score(self, X: np.ndarray) -> np.ndarray:
        forest = self.forest_
        if "nan_left" not in forest:  # saved before the numba walk: flatten again from the fitted forest
            forest = self.forest_ = flatten_forest(self.model_)
        # Trees split float32 inputs (scikit-learn casts before apply); round the same way to agree.
        X32 = np.ascontiguousarray(X, dtype=np.float32).astype(np.float64)
        depths = _forest_depths(
            X32,
            forest["feature"],
            forest["threshold"],
            forest["left"],
            forest["right"],
            forest["nan_left"],
            forest["value"],
            forest["root"],
        )
        denominator = float(forest["denominator"])
        return np.ones(len(X32)) if denominator == 0 else np.power(2.0, -depths / denominator)


def flatten_forest(model: IsolationForest) -> dict[str, Any]:
    """Every tree of a fitted forest in shared flat arrays (node ids offset per tree).

    scikit-learn scores tree by tree through joblib, which costs milliseconds per call even for a
    single row; one numba walk over the flat arrays gives the same scores (tested) in microseconds.
    """
    features, thresholds, lefts, rights, nan_lefts, values, roots = [], [], [], [], [], [], []
    offset = 0
    for tree, tree_features, path_len, avg_len in zip(
        model.estimators_,
        model.estimators_features_,
        model._decision_path_lengths,
        model._average_path_length_per_tree,
        strict=True,
    ):
        t = tree.tree_
        is_leaf = t.children_left == -1
        # Trees see a feature subset; map their column ids back to the full row once, here.
        features.append(np.where(is_leaf, 0, np.asarray(tree_features)[np.maximum(t.feature, 0)]))
        thresholds.append(t.threshold)
        lefts.append(np.where(is_leaf, -1, t.children_left + offset))
        rights.append(np.where(is_leaf, -1, t.children_right + offset))
        mgl = getattr(t, "missing_go_to_left", None)
        nan_lefts.append(np.zeros(t.node_count, dtype=np.bool_) if mgl is None else np.asarray(mgl, dtype=np.bool_))
        values.append(path_len + avg_len - 1.0)  # scikit-learn's per-leaf depth contribution
        roots.append(offset)
        offset += t.node_count
    return {
        "feature": np.concatenate(features).astype(np.int64),
        "threshold": np.concatenate(thresholds).astype(np.float64),
        "left": np.concatenate(lefts).astype(np.int64),
        "right": np.concatenate(rights).astype(np.int64),
        "nan_left": np.concatenate(nan_lefts),
        "value": np.concatenate(values).astype(np.float64),
        "root": np.asarray(roots, dtype=np.int64),
        "denominator": float(len(model.estimators_) * _average_path_length([model._max_samples])[0]),
    }


@numba.njit(cache=True, nogil=True)
def _forest_depths(
    X: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    nan_left: np.ndarray,
    leaf_value: np.ndarray,
    roots: np.ndarray,
) -> np.ndarray:
    n = X.shape[0]
    out = np.zeros(n)
    for i in range(n):
        total = 0.0
        for t in range(roots.shape[0]):
            node = roots[t]
            while left[node] != -1:
                v = X[i, feature[node]]
                if math.isnan(v):
                    node = left[node] if nan_left[node] else right[node]
                elif v <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            total += leaf_value[node]
        out[i] = total
    return out
