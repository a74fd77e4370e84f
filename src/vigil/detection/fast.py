"""The compiled serving path: the trained ensemble's detectors in a form that scores one row fast.

Each fitted detector is translated into a small object with the same ``score_samples(X)``
contract (float64, higher = more anomalous) that computes the same numbers as the reference, but
without scikit-learn's per-call validation and dispatch, which dominates the cost of one row:

* Isolation Forest: every tree flattened into shared arrays and walked by one numba kernel (the
  reference walks 100 trees through 100 Python-level ``tree.apply`` calls).
* LOF: the fitted reference set (already bounded to ``max_train`` rows at fit time) with its
  k-distances and local reachability densities; the kNN query is one BLAS matrix-vector product
  plus a partial sort. ONNX is ~37x *slower* here (measured), so it is not used.
* One-class SVM: the RBF kernel expansion over the support vectors, vectorised.
* PCA: projection folded into one ``d x d`` residual matrix.
* Autoencoder: already a numpy forward pass; wrapped without the validation layer.

:func:`verify` checks a compiled model against its reference on real rows; serving refuses the
fast path for any detector that disagrees beyond the tolerance and keeps the reference for it.
"""

from __future__ import annotations

import bisect
import copy
import logging
import math
import types
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length
from sklearn.neighbors import LocalOutlierFactor
from sklearn.svm import OneClassSVM

from vigil.contracts import ScoringModel

log = logging.getLogger(__name__)

RTOL = 1e-6
ATOL = 1e-9


def limit_blas_threads() -> None:
    """One BLAS thread per process: scoring is one row at a time, where a second BLAS thread only
    adds hand-off latency, and on a busy machine a spinning helper thread turns 0.3 ms GEMVs into
    10 ms stalls (measured). Concurrency comes from the request threads instead."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


# -- Isolation Forest ------------------------------------------------------------------------------
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


class FastIForest:
    """All trees of a fitted ``IsolationForest`` in flat arrays (node ids offset per tree)."""

    def __init__(self, forest: IsolationForest) -> None:
        features, thresholds, lefts, rights, nan_lefts, leaf_values, roots = [], [], [], [], [], [], []
        offset = 0
        for tree, tree_features, path_len, avg_len in zip(
            forest.estimators_,
            forest.estimators_features_,
            forest._decision_path_lengths,
            forest._average_path_length_per_tree,
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
            leaf_values.append(path_len + avg_len - 1.0)  # sklearn's per-leaf depth contribution
            roots.append(offset)
            offset += t.node_count
        self.feature = np.concatenate(features).astype(np.int64)
        self.threshold = np.concatenate(thresholds).astype(np.float64)
        self.left = np.concatenate(lefts).astype(np.int64)
        self.right = np.concatenate(rights).astype(np.int64)
        self.nan_left = np.concatenate(nan_lefts)
        self.leaf_value = np.concatenate(leaf_values).astype(np.float64)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.denominator = float(len(forest.estimators_) * _average_path_length([forest._max_samples])[0])

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        """``2 ** (-E[h(x)] / c(n))``: minus scikit-learn's ``score_samples``."""
        # The reference compares float32 inputs with the thresholds; round the same way.
        X32 = np.ascontiguousarray(X, dtype=np.float32).astype(np.float64)
        depths = _forest_depths(
            X32, self.feature, self.threshold, self.left, self.right, self.nan_left, self.leaf_value, self.roots
        )
        if self.denominator == 0:
            return np.ones(len(X32))
        return np.power(2.0, -depths / self.denominator)


# -- LOF -------------------------------------------------------------------------------------------
class FastLOF:
    """Novelty-mode LOF over the fitted reference set, kNN by one GEMV and ``argpartition``."""

    def __init__(self, lof: LocalOutlierFactor) -> None:
        if lof.effective_metric_ not in ("euclidean", "minkowski") or lof.effective_metric_params_.get("p", 2) != 2:
            raise TypeError(f"LOF metric {lof.effective_metric_} has no fast path")
        self.ref = np.ascontiguousarray(lof._fit_X, dtype=np.float64)
        self.ref_sq = np.einsum("ij,ij->i", self.ref, self.ref)
        self.k = int(lof.n_neighbors_)
        self.k_distance = np.ascontiguousarray(lof._distances_fit_X_[:, self.k - 1])
        self.lrd = np.ascontiguousarray(lof._lrd)

    def neg_score_samples(self, X: np.ndarray) -> np.ndarray:
        """Mean LRD ratio of the k nearest reference points (minus sklearn's ``score_samples``)."""
        X = np.asarray(X, dtype=np.float64)
        sq = np.einsum("ij,ij->i", X, X)[:, None] - 2.0 * (X @ self.ref.T) + self.ref_sq[None, :]
        np.maximum(sq, 0.0, out=sq)
        k = self.k
        idx = np.argpartition(sq, k - 1, axis=1)[:, :k]
        dist = np.sqrt(np.take_along_axis(sq, idx, axis=1))
        reach = np.maximum(dist, self.k_distance[idx])
        lrd_x = 1.0 / (reach.mean(axis=1) + 1e-10)
        return (self.lrd[idx] / lrd_x[:, None]).mean(axis=1)


# -- One-class SVM ---------------------------------------------------------------------------------
class FastOCSVM:
    def __init__(self, svm: OneClassSVM) -> None:
        if svm.kernel != "rbf":
            raise TypeError(f"OneClassSVM kernel {svm.kernel} has no fast path")
        self.sv = np.ascontiguousarray(svm.support_vectors_, dtype=np.float64)
        self.sv_sq = np.einsum("ij,ij->i", self.sv, self.sv)
        self.coef = np.ascontiguousarray(svm.dual_coef_[0], dtype=np.float64)
        self.gamma = float(svm._gamma)
        self.intercept = float(svm.intercept_[0])

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        sq = np.einsum("ij,ij->i", X, X)[:, None] - 2.0 * (X @ self.sv.T) + self.sv_sq[None, :]
        np.maximum(sq, 0.0, out=sq)
        return np.exp(-self.gamma * sq) @ self.coef + self.intercept


# -- detector wrappers -----------------------------------------------------------------------------
class CompiledDetector:
    """Stands in for a fitted Vigil detector in the serving copy of a model: ``score_samples`` only."""

    def __init__(self, reference: Any, kind: str, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.reference = reference
        self.kind = kind
        self._fn = fn
        self.n_features_in_ = getattr(reference, "n_features_in_", None)

    def score_samples(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        return self._fn(X)

    def _score(self, X: Any) -> np.ndarray:
        # The pipeline's per-step path calls the validation-free ``_score``; it must land here too.
        return self._fn(np.asarray(X, dtype=np.float64))

    def __getattr__(self, name: str) -> Any:
        # Anything the pipeline reads besides score_samples (parameters, offset_) comes from the reference.
        if name in ("reference", "_fn", "kind"):
            raise AttributeError(name)
        return getattr(self.reference, name)


def _compile_iforest(det: Any) -> Callable[[np.ndarray], np.ndarray]:
    fast = FastIForest(det.model_)
    return fast.anomaly_score


def _compile_lof(det: Any) -> Callable[[np.ndarray], np.ndarray]:
    return FastLOF(det.model_).neg_score_samples


def _compile_ocsvm(det: Any) -> Callable[[np.ndarray], np.ndarray]:
    fast = FastOCSVM(det.model_)
    return lambda X: -fast.decision_function(X)


def _compile_pca(det: Any) -> Callable[[np.ndarray], np.ndarray]:
    pca = det.model_
    if getattr(pca, "whiten", False):
        raise TypeError("whitened PCA has no fast path")
    comps = np.asarray(pca.components_, dtype=np.float64)
    # Z - inverse(transform(Z)) == (Z - m) @ (I - C^T C): one matrix instead of two products.
    residual = np.eye(comps.shape[1]) - comps.T @ comps
    shift = np.asarray(det.mean_, dtype=np.float64)
    scale = np.asarray(det.scale_, dtype=np.float64)
    center = np.asarray(pca.mean_, dtype=np.float64)

    def score(X: np.ndarray) -> np.ndarray:
        r = ((X - shift) / scale - center) @ residual
        return np.einsum("ij,ij->i", r, r)

    return score


def _compile_autoencoder(det: Any) -> Callable[[np.ndarray], np.ndarray]:
    return det._score  # already a plain numpy forward pass; skipping validation is the gain


_COMPILERS: dict[str, Callable[[Any], Callable[[np.ndarray], np.ndarray]]] = {
    "IForestDetector": _compile_iforest,
    "LOFDetector": _compile_lof,
    "OCSVMDetector": _compile_ocsvm,
    "PCADetector": _compile_pca,
    "AutoencoderDetector": _compile_autoencoder,
}


def compile_detector(det: Any) -> CompiledDetector | None:
    compiler = _COMPILERS.get(type(det).__name__)
    if compiler is None:
        return None
    return CompiledDetector(det, type(det).__name__, compiler(det))


def verify_detector(reference: Any, compiled: CompiledDetector, X: np.ndarray) -> float:
    """Largest relative difference between the compiled and the reference scores on ``X``."""
    want = np.asarray(reference.score_samples(X), dtype=np.float64)
    got = compiled.score_samples(X)
    scale = np.maximum(np.abs(want), 1.0)
    return float(np.max(np.abs(got - want) / scale)) if len(want) else 0.0


# -- calibration -----------------------------------------------------------------------------------
class FastCalibrator:
    """``TailCalibrator.surprisal`` for one score in plain float arithmetic.

    For a single value, numpy's per-call overhead (a dozen ufunc calls, ~50 us) dwarfs the work; the
    same formula on Python floats gives the same result (checked by :func:`compile_model`).
    """

    def __init__(self, cal: Any) -> None:
        self.reference = cal
        self.sorted_ = cal.sorted_.tolist()
        self.n_sorted = len(self.sorted_)
        self.p = float(cal.tail)
        self.q = float(cal.q_)
        self.n_below = max(int(cal.n_below_q_), 1)
        self.beta = float(cal.beta_)
        self.tail_base = -math.log1p(-self.p)
        self.max_z = float(_max_surprisal())

    def surprisal_one(self, s: float) -> float:
        if s != s:
            idx = self.n_sorted  # numpy sorts NaN last
        else:
            idx = bisect.bisect_right(self.sorted_, s)
        if s > self.q:
            z = self.tail_base + (s - self.q) / self.beta
        else:
            z = -math.log1p(-min(self.p * idx / self.n_below, self.p))
        if z != z:
            return 0.0
        return min(max(z, 0.0), self.max_z)

    def surprisal(self, scores: Any) -> np.ndarray:
        return self.reference.surprisal(scores)

    def __call__(self, scores: Any) -> np.ndarray:
        return self.reference(scores)


def _max_surprisal() -> float:
    from vigil.detectors.calibration import MAX_SURPRISAL

    return MAX_SURPRISAL


def _fused_score_surprisal(model: Any, compiled: dict[str, Any], calibrators: dict[str, FastCalibrator]) -> Any:
    """``score_surprisal`` for the serving copy: one row goes through plain-float calibration."""
    names = list(model.detectors)
    columns = [model.detector_columns_[n] for n in names]
    reference = type(model).score_surprisal

    def score_surprisal(self: Any, Z: np.ndarray) -> np.ndarray:
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[0] != 1:
            return reference(self, Z)
        row = Z[0]
        out = np.empty((1, len(names)))
        for j, (name, cols) in enumerate(zip(names, columns, strict=True)):
            raw = float(compiled[name].score_samples(row[cols][None, :])[0])
            out[0, j] = calibrators[name].surprisal_one(raw)
        return out

    return score_surprisal


# -- whole model ---# -- whole model -----------------------------------------------------------------------------------
def compile_model(
    model: ScoringModel, *, check_rows: np.ndarray | None = None, rtol: float = 1e-6
) -> tuple[ScoringModel, dict[str, Any]]:
    """A serving copy of ``model`` whose detectors are compiled; the original stays untouched.

    ``check_rows`` (real feature rows, e.g. the model's own reference sample) are scored by both
    paths; a detector whose compiled scores differ by more than ``rtol`` keeps the reference.
    """
    fast_model = copy.copy(model)
    info: dict[str, Any] = {"fast": False, "detectors": {}}
    rows = check_rows if check_rows is not None else _reference_rows(model)
    for attr in ("detectors_", "fitted_detectors_", "members_"):
        container = getattr(model, attr, None)
        if container is None:
            continue
        if isinstance(container, dict):
            new: Any = dict(container)
            items = list(container.items())
        elif isinstance(container, list | tuple):
            new = list(container)
            items = list(enumerate(container))
        else:
            continue
        for key, item in items:
            name, det = item if isinstance(item, tuple) and len(item) == 2 else (str(key), item)
            compiled = compile_detector(det)
            if compiled is None:
                info["detectors"][name] = "reference"
                continue
            if rows is not None and len(rows):
                cols = getattr(model, "detector_columns_", {}).get(name)
                err = verify_detector(det, compiled, rows if cols is None else rows[:, cols])
                if not err <= rtol:
                    log.warning("fast %s differs from the reference by %.2e; serving the reference", name, err)
                    info["detectors"][name] = f"reference (fast path off by {err:.1e})"
                    continue
            if isinstance(item, tuple) and len(item) == 2:
                new[key] = (name, compiled)
            else:
                new[key] = compiled
            info["detectors"][name] = compiled.kind
        setattr(fast_model, attr, tuple(new) if isinstance(container, tuple) else new)
    info["fast"] = any(v != "reference" and not str(v).startswith("reference") for v in info["detectors"].values())
    _fuse(model, fast_model, rows, info)
    return fast_model, info


def _fuse(model: Any, fast_model: Any, rows: np.ndarray | None, info: dict[str, Any]) -> None:
    """Replace the per-row calibration with the plain-float one, if it reproduces the reference."""
    calibrators = getattr(model, "calibrators_", None)
    detectors = getattr(fast_model, "detectors_", None)
    if not isinstance(calibrators, dict) or not isinstance(detectors, dict) or not hasattr(model, "detector_columns_"):
        return
    try:
        fast_cals = {n: FastCalibrator(c) for n, c in calibrators.items()}
        fused = types.MethodType(_fused_score_surprisal(model, detectors, fast_cals), fast_model)
    except (AttributeError, KeyError, TypeError):
        return
    if rows is not None and len(rows):
        want = np.vstack([fast_model.score_surprisal(rows[i : i + 1]) for i in range(len(rows))])
        got = np.vstack([fused(rows[i : i + 1]) for i in range(len(rows))])
        if not np.allclose(got, want, rtol=1e-9, atol=1e-12):
            info["calibration"] = "reference (fused path disagreed)"
            return
    fast_model.score_surprisal = fused
    info["calibration"] = "fused"


def _reference_rows(model: Any) -> np.ndarray | None:
    """Detector-input rows built from the model's own training statistics (feature quantiles).

    They are real in the sense that matters: every value is a quantile of the training features,
    so each detector is checked across the range it was fitted on, including both tails.
    """
    stats = getattr(model, "reference_stats_", {}).get("features")
    names = getattr(model, "feature_names_", None)
    if not stats or not names or not hasattr(model, "standardize"):
        return None
    rows = []
    for q in ("q01", "q05", "q25", "q50", "q75", "q95", "q99"):
        rows.append([np.nan if stats.get(n, {}).get(q) is None else stats[n][q] for n in names])
    F = np.asarray(rows, dtype=np.float64)
    return np.asarray(model.standardize(F), dtype=np.float64)
