from __future__ import annotations

import math

import numpy as np
import pytest

from tests.unit.drift.conftest import GAP, SHIFTED_TEST_ROWS, WINDOW
from vigil.datasets import Split
from vigil.drift import DriftConfig, DriftMonitor, DriftReference


@pytest.fixture(scope="module")
def reference(smd_split: Split, half: int) -> DriftReference:
    train = smd_split.train.iloc[:half]
    return DriftReference.fit({c: train[c].to_numpy() for c in train.columns}, window=WINDOW)


def _feed(monitor: DriftMonitor, frame, gaps=None) -> None:  # type: ignore[no-untyped-def]
    monitor.update_frame({c: frame[c].to_numpy() for c in frame.columns}, gaps=gaps)


def test_held_back_train_segment_shows_no_drift(reference: DriftReference, smd_split: Split, half: int) -> None:
    monitor = DriftMonitor(reference)
    _feed(monitor, smd_split.train.iloc[half + GAP : half + GAP + WINDOW])
    snap = monitor.snapshot()
    assert snap.ready and not snap.drifted
    assert snap.drifted_fraction < 0.1


def test_shifted_test_segment_drifts(reference: DriftReference, smd_split: Split) -> None:
    monitor = DriftMonitor(reference)
    _feed(monitor, smd_split.test.iloc[SHIFTED_TEST_ROWS])
    snap = monitor.snapshot()
    assert snap.drifted and snap.reasons == ("features",)
    assert snap.drifted_fraction > 0.4
    drifted = {n for n, f in snap.features.items() if f.drifted}
    assert "m15" in drifted  # 1-based dim 16, named by the labelled event's interpretation


def test_gaps_are_counted_not_judged(reference: DriftReference, smd_split: Split) -> None:
    monitor = DriftMonitor(reference)
    shifted = smd_split.test.iloc[SHIFTED_TEST_ROWS]
    _feed(monitor, shifted, gaps=np.ones(len(shifted), dtype=bool))
    snap = monitor.snapshot()
    assert snap.ignored_samples == len(shifted) and snap.samples == 0
    assert not snap.ready and not snap.drifted


def test_window_not_yet_full_is_not_judged(reference: DriftReference, smd_split: Split) -> None:
    monitor = DriftMonitor(reference)
    _feed(monitor, smd_split.test.iloc[SHIFTED_TEST_ROWS].iloc[: WINDOW // 4])
    snap = monitor.snapshot()
    assert not snap.ready and not snap.drifted


def test_missing_values_are_skipped(reference: DriftReference, smd_split: Split, half: int) -> None:
    monitor = DriftMonitor(reference)
    held = smd_split.train.iloc[half + GAP : half + GAP + WINDOW]
    for i, row in enumerate(held.itertuples(index=False)):
        values = dict(zip(held.columns, row, strict=True))
        values["m00"] = math.nan  # a series that stopped reporting
        monitor.update(float(i), values)
    snap = monitor.snapshot()
    assert math.isnan(snap.features["m00"].psi) and not snap.features["m00"].drifted
    assert not snap.drifted


def test_snapshot_is_cached_until_new_data(reference: DriftReference, smd_split: Split, half: int) -> None:
    monitor = DriftMonitor(reference)
    _feed(monitor, smd_split.train.iloc[half : half + 100])
    first = monitor.snapshot()
    assert monitor.snapshot() is first
    monitor.update(0.0, {"m00": 0.1})
    assert monitor.snapshot() is not first


def test_alert_rate_change_points_are_golden(labels_1_4: np.ndarray) -> None:
    # Real alarm-like stream: machine-1-4's test labels. ADWIN must fire just after the first
    # two events start (385, 5626) and at the end of the second; exact positions are golden.
    ref = DriftReference.fit({"x": np.zeros(10)}, window=WINDOW)
    monitor = DriftMonitor(ref, DriftConfig(alert_rate_detector="adwin"))
    changes = []
    for i, label in enumerate(labels_1_4[:6000]):
        monitor.update(float(i), {}, alarm=bool(label))
        if monitor._changes > len(changes):
            changes.append(i)
    assert changes == [415, 5663, 5791]
    snap = monitor.snapshot()
    assert snap.alert_rate_changes == 3 and snap.alert_rate_change
    # ...but a 53-step incident in a 1440-step window is an incident, not alert-rate drift.
    assert snap.alert_rate < 0.05 and "alert_rate" not in snap.reasons


def test_sustained_alert_rate_change_is_drift(data_dir) -> None:  # type: ignore[no-untyped-def]
    # machine-2-1's 452-step event 16136-16588: alarms for a third of the window is a new regime.
    labels = np.loadtxt(data_dir / "smd" / "test_label" / "machine-2-1.txt")
    monitor = DriftMonitor(DriftReference.fit({"x": np.zeros(10)}, window=WINDOW))
    for i, label in enumerate(labels[14000:16600]):
        monitor.update(float(i), {}, alarm=bool(label))
    snap = monitor.snapshot()
    assert snap.alert_rate > 0.3 and snap.reasons == ("alert_rate",)


def test_page_hinkley_option(labels_1_4: np.ndarray) -> None:
    ref = DriftReference.fit({"x": np.zeros(10)}, window=WINDOW)
    monitor = DriftMonitor(ref, DriftConfig(alert_rate_detector="page_hinkley"))
    for i, label in enumerate(labels_1_4[:6000]):
        monitor.update(float(i), {}, alarm=bool(label))
    assert monitor.snapshot().alert_rate_changes == 2


def test_snapshot_to_dict_is_json_safe(reference: DriftReference) -> None:
    import json

    json.dumps(DriftMonitor(reference).snapshot().to_dict(), allow_nan=False)
