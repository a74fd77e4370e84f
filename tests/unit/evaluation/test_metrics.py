"""Event, point and ranking metrics on tiny hand-computed vectors (pure arithmetic)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vigil.evaluation.metrics import (
    alert_runs,
    auc_pr,
    evaluate,
    event_metrics,
    label_events,
    macro_average,
    point_metrics,
)


def test_runs() -> None:
    assert label_events(np.array([1, 1, 0, 0, 1])) == [(0, 2), (4, 5)]
    assert alert_runs(np.zeros(4)) == []


def test_event_detected_shortly_after_its_end_but_not_later() -> None:
    y = np.zeros(40, dtype=int)
    y[10:20] = 1  # 10 rows: window tail max(5, 1) = 5, so rows 10..24
    late_ok = np.zeros(40, dtype=int)
    late_ok[24] = 1
    too_late = np.zeros(40, dtype=int)
    too_late[25] = 1
    assert event_metrics(y, late_ok)["event_recall"] == 1.0
    m = event_metrics(y, too_late)
    assert m["event_recall"] == 0.0 and m["false_runs"] == 1 and m["event_f1"] == 0.0


def test_precision_definitions_differ_on_fragmented_alerts() -> None:
    y = np.zeros(100, dtype=int)
    y[10:30] = 1
    a = np.zeros(100, dtype=int)
    a[[12, 14, 16, 60]] = 1  # three runs inside the event, one false run
    m = event_metrics(y, a)
    assert m["event_precision"] == pytest.approx(3 / 4)  # runs that hit / all runs
    assert m["event_precision_strict"] == pytest.approx(1 / 2)  # detected events / (events + false runs)
    assert m["event_recall"] == 1.0
    assert m["event_f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert m["false_runs_per_1k"] == pytest.approx(1000 / 80)
    assert m["mean_delay"] == 2.0


def test_no_alerts_at_all() -> None:
    y = np.array([0, 1, 1, 0])
    m = event_metrics(y, np.zeros(4))
    assert m["event_f1"] == 0.0 and m["alert_runs"] == 0 and math.isnan(m["mean_delay"])


def test_point_metrics_without_adjustment() -> None:
    y = np.array([0, 1, 1, 1, 0])
    a = np.array([0, 1, 0, 0, 0])
    # Point adjustment would count all three labelled points as found; we do not.
    assert point_metrics(y, a) == {"point_precision": 1.0, "point_recall": 1 / 3, "point_f1": 0.5}


def test_auc_pr() -> None:
    assert auc_pr(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auc_pr(np.array([1, 0, 1, 0]), np.array([1.0, 0.9, 0.1, 0.0])) == pytest.approx((1 + 2 / 3) / 2)
    assert math.isnan(auc_pr(np.zeros(3), np.arange(3.0)))


def test_evaluate_and_macro() -> None:
    y = np.array([0, 1, 1, 0, 0, 0])
    r1 = evaluate(y, np.array([0, 1, 1, 0, 0, 0.0]), np.array([0, 1, 1, 0, 0, 0]))
    r2 = evaluate(np.zeros(6), np.zeros(6), np.zeros(6))  # no events: recall undefined, not 0
    assert r1["event_f1"] == 1.0 and r1["auc_pr"] == 1.0
    macro = macro_average([r1, r2])
    assert macro["event_f1"] == 1.0 and macro["entities"] == 2
    assert macro["false_runs_per_1k"] == 0.0
