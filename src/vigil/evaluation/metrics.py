"""Anomaly-detection metrics that do not flatter: no point adjustment anywhere.

Definitions (the protocol of ``docs/benchmarks.md``):

* **event**: a maximal run of label 1, ``[start, end)``. Its *window* extends past the end by
  ``max(min_tail, tail_frac * length)`` rows, because an alert shortly after an incident still
  pages the right person.
* **alert run**: a maximal run of alert 1. A run that overlaps no event window is a *false run*.
* **event recall**: events with at least one alert inside their window / events.
* **event precision**: alert runs that overlap an event window / all alert runs (the benchmark
  issue's definition; it reproduces the reference baselines quoted there).
* **strict event precision**: detected events / (detected events + false runs). Here splitting one
  alert into many inside an event earns nothing; reported beside the other as ``*_strict``.
* **false runs per 1k**: false runs per 1,000 rows labelled normal.
* **delay**: rows from an event's start to its first alert in the window (detected events only).
* **point precision / recall / F1**: alert vs label row by row, as they are, with no adjustment.
* **AUC-PR**: average precision of the continuous score (scikit-learn), threshold-free.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    m = np.asarray(mask, dtype=bool).astype(np.int8)
    if m.size == 0:
        return []
    d = np.diff(np.concatenate([[0], m, [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def label_events(labels: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of label 1 as ``(start, end)`` with exclusive end.

    >>> label_events(np.array([0, 1, 1, 0, 1]))
    [(1, 3), (4, 5)]
    """
    return _runs(labels)


def alert_runs(alerts: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of alert 1 as ``(start, end)`` with exclusive end."""
    return _runs(alerts)


def event_metrics(
    labels: np.ndarray, alerts: np.ndarray, min_tail: int = 5, tail_frac: float = 0.1
) -> dict[str, float]:
    """Event-level precision / recall / F1, false runs per 1k normal rows, detection delay.

    >>> m = event_metrics(np.array([0, 1, 1, 0, 0, 0, 0, 0, 0, 0]), np.array([0, 0, 1, 1, 0, 0, 0, 0, 1, 0]), 1)
    >>> m["event_recall"], m["false_runs"], m["mean_delay"]
    (1.0, 1, 1.0)
    """
    y = np.asarray(labels).astype(bool)
    a = np.asarray(alerts).astype(bool)
    if y.shape != a.shape:
        raise ValueError(f"labels and alerts differ in shape: {y.shape} vs {a.shape}")
    n = len(y)
    events = label_events(y)
    in_window = np.zeros(n, dtype=bool)
    detected, delays = 0, []
    for s, e in events:
        tail = max(min_tail, int(math.ceil(tail_frac * (e - s))))
        we = min(n, e + tail)
        in_window[s:we] = True
        hits = np.flatnonzero(a[s:we])
        if len(hits):
            detected += 1
            delays.append(float(hits[0]))
    runs = alert_runs(a)
    false_runs = sum(1 for s, e in runs if not in_window[s:e].any())
    normal = int((~y).sum())
    recall = detected / len(events) if events else math.nan
    precision = (len(runs) - false_runs) / len(runs) if runs else math.nan
    strict_denom = detected + false_runs
    strict = detected / strict_denom if strict_denom else math.nan
    return {
        "events": len(events),
        "detected_events": detected,
        "alert_runs": len(runs),
        "false_runs": false_runs,
        "event_precision": precision,
        "event_recall": recall,
        "event_f1": _f1(precision, recall, bool(events)),
        "event_precision_strict": strict,
        "event_f1_strict": _f1(strict, recall, bool(events)),
        "false_runs_per_1k": 1000.0 * false_runs / normal if normal else math.nan,
        "mean_delay": float(np.mean(delays)) if delays else math.nan,
        "median_delay": float(np.median(delays)) if delays else math.nan,
    }


def _f1(precision: float, recall: float, has_events: bool) -> float:
    if not has_events:
        return math.nan
    if math.isnan(precision) or precision + recall == 0:
        return 0.0  # no alert at all, or none that hits: nothing was detected
    return 2 * precision * recall / (precision + recall)


def point_metrics(labels: np.ndarray, alerts: np.ndarray) -> dict[str, float]:
    """Row-wise precision / recall / F1 of alerts against labels, without point adjustment.

    >>> point_metrics(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 1]))
    {'point_precision': 0.5, 'point_recall': 0.5, 'point_f1': 0.5}
    """
    y = np.asarray(labels).astype(bool)
    a = np.asarray(alerts).astype(bool)
    tp = int((y & a).sum())
    p = tp / a.sum() if a.sum() else math.nan
    r = tp / y.sum() if y.sum() else math.nan
    f1 = 2 * p * r / (p + r) if (a.sum() and y.sum() and p + r > 0) else (0.0 if y.sum() else math.nan)
    return {"point_precision": float(p), "point_recall": float(r), "point_f1": float(f1)}


def auc_pr(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of ``scores`` against ``labels`` (NaN when there is no positive)."""
    y = np.asarray(labels).astype(int)
    if y.sum() == 0 or y.sum() == len(y):
        return math.nan
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    s = np.where(np.isneginf(s), np.nanmin(np.where(np.isfinite(s), s, np.nan)) - 1.0, s)
    return float(average_precision_score(y, s))


def evaluate(labels: np.ndarray, scores: np.ndarray, alerts: np.ndarray, **event_kw: Any) -> dict[str, float]:
    """All metrics of one scored series."""
    out: dict[str, float] = {"auc_pr": auc_pr(labels, scores)}
    out.update(point_metrics(labels, alerts))
    out.update(event_metrics(labels, alerts, **event_kw))
    out["rows"] = len(labels)
    out["anomalous_rows"] = int(np.asarray(labels).astype(bool).sum())
    return out


def macro_average(results: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean of every metric over entities, ignoring NaN (an entity with no event has no recall)."""
    rows = list(results)
    keys = [k for k in rows[0] if isinstance(rows[0][k], int | float)] if rows else []
    out = {}
    for k in keys:
        vals = np.array([r.get(k, math.nan) for r in rows], dtype=np.float64)
        out[k] = float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan
    out["entities"] = len(rows)
    return out
