"""One benchmark entity: fit on its training part, score, and evaluate every method side by side.

Pure core (no file I/O): the CLI (:mod:`vigil.cli.bench`) reads the datasets and writes results.
Methods compared in one process, on the same data and features:

* ``ensemble``: the full :class:`~vigil.detectors.pipeline.AnomalyPipeline`;
* each single detector (``iforest``, ``lof``, ...): the same pipeline stages (features,
  calibration, cross-fitted threshold, smoothing, alarm aggregation) with that detector alone;
* ``pca_baseline``: PCA reconstruction error on the standardised raw metrics (90 % variance),
  alert where the score exceeds the 99.5th percentile of its own training scores, the simple
  baseline protocol of the benchmark issue.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vigil.detectors.combination import to_unit
from vigil.detectors.pca import PCADetector
from vigil.detectors.pipeline import AnomalyPipeline
from vigil.evaluation.metrics import evaluate

BASELINE_QUANTILE = 0.995


@dataclass
class EntityResult:
    """Scores and metrics of one entity."""

    name: str
    output: pd.DataFrame  # columns score, alert: the rows the CSV must hold
    metrics: dict[str, dict[str, float]]  # method -> metrics on the evaluated rows
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def run_entity(
    name: str,
    frame: pd.DataFrame,
    n_train: int,
    labels: np.ndarray,
    *,
    output_from: int | None = None,
    pipeline_params: Mapping[str, Any] | None = None,
) -> EntityResult:
    """Fit on ``frame[:n_train]``, score all of ``frame``, evaluate rows ``n_train:`` against ``labels``.

    ``output_from`` is the first row written to the CSV (default ``n_train``: the test part only;
    NAB writes every row of the series). Scoring runs over the whole frame so the test part starts
    with warm feature windows, as a running service would have.
    """
    start = time.perf_counter()
    labels = np.asarray(labels).astype(np.int8)
    if len(labels) != len(frame) - n_train:
        raise ValueError(f"{name}: {len(labels)} labels for {len(frame) - n_train} test rows")
    output_from = n_train if output_from is None else output_from
    train = frame.iloc[:n_train]
    model = AnomalyPipeline(**dict(pipeline_params or {})).fit(train)
    z, smoothed, pos = model.surprisal_frame(frame)
    above = smoothed > model.threshold_z_
    alarm = model._aggregator().run(above)
    test = pos[n_train:]
    metrics: dict[str, dict[str, float]] = {}
    metrics["ensemble"] = evaluate(labels, smoothed[test], alarm[test])
    for det in model.scorers_:
        s, a = model.single_detector_alarms(z, det)
        metrics[det] = evaluate(labels, s[test], a[test])
    base_score, base_alert = pca_baseline(frame, n_train)
    metrics["pca_baseline"] = evaluate(labels, base_score[n_train:], base_alert[n_train:])

    out_rows = pos[output_from:]
    output = pd.DataFrame({"score": to_unit(smoothed[out_rows]), "alert": alarm[out_rows].astype(np.int8)})
    info = {
        "train_rows": int(n_train),
        "test_rows": int(len(labels)),
        "features": len(model.feature_names_),
        "weights": {d: round(float(w), 4) for d, w in zip(model.scorers_, model.weights_, strict=True)},
        "threshold": model.threshold_,
        "threshold_surprisal": model.threshold_z_,
    }
    return EntityResult(name, output, metrics, time.perf_counter() - start, info)


def pca_baseline(frame: pd.DataFrame, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA reconstruction error on raw metrics; alert above the 99.5th training percentile."""
    X = frame.to_numpy(dtype=np.float64)
    # The baseline has no missing-data handling of its own; forward-fill is the usual choice there.
    X = pd.DataFrame(X).ffill().fillna(0.0).to_numpy()
    det = PCADetector(n_components=0.9).fit(X[:n_train])
    scores = det.score_samples(X)
    thr = float(np.quantile(scores[:n_train], BASELINE_QUANTILE))
    return scores, scores > thr


def summarize(results: Sequence[EntityResult]) -> dict[str, Any]:
    """Per-entity and macro-averaged metrics of every method."""
    from vigil.evaluation.metrics import macro_average

    methods = list(results[0].metrics) if results else []
    return {
        "macro": {m: macro_average([r.metrics[m] for r in results]) for m in methods},
        "entities": {r.name: {"seconds": round(r.seconds, 2), **r.info, "metrics": r.metrics} for r in results},
    }
