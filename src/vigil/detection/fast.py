"""The serving copy of a trained model: what scores one row fast without changing a number.

The fast arithmetic lives in the detectors themselves (one place for each): Isolation Forest walks
its flattened trees in one numba kernel, LOF and the one-class SVM are a BLAS product over their
(bounded) reference sets, PCA one projection, the autoencoder a numpy forward pass; ONNX was ~37x
*slower* for LOF here (measured), so it is not used. This module removes the remaining per-call
overhead on the serving path, ``BaseDetector.score_samples``' input validation (wrapped away by
:class:`CompiledDetector`); calibration of one row is plain-float arithmetic in the calibrator itself
(``TailCalibrator.surprisal_one``).

:func:`compile_model` checks the copy against the reference on real rows; serving refuses the
fast path for any detector that disagrees beyond the tolerance and keeps the reference for it.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from vigil.contracts import ScoringModel
from vigil.detectors.base import BaseDetector

log = logging.getLogger(__name__)

RTOL = 1e-6
ATOL = 1e-9


def limit_blas_threads() -> None:
    """One BLAS thread per process: scoring is one row at a time, where a second BLAS thread only
    adds hand-off latency, and on a busy machine a spinning helper thread turns 0.3 ms GEMVs into
    10 ms stalls (measured). Concurrency comes from the request threads instead."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


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


def compile_detector(det: Any) -> CompiledDetector | None:
    """The detector's own validation-free ``_score`` behind ``score_samples``; None for foreign objects.

    Vigil's detectors already score in plain numpy/numba (see each detector's ``_score``); what the
    serving copy drops is the per-call input validation of ``BaseDetector.score_samples``.
    """
    if not isinstance(det, BaseDetector) or not callable(getattr(det, "_score", None)):
        return None
    return CompiledDetector(det, type(det).__name__, det._score)


def verify_detector(reference: Any, compiled: CompiledDetector, X: np.ndarray) -> float:
    """Largest relative difference between the compiled and the reference scores on ``X``."""
    want = np.asarray(reference.score_samples(X), dtype=np.float64)
    got = compiled.score_samples(X)
    scale = np.maximum(np.abs(want), 1.0)
    return float(np.max(np.abs(got - want) / scale)) if len(want) else 0.0


# -- whole model -----------------------------------------------------------------------------------
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
    return fast_model, info


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
