from __future__ import annotations

from prometheus_client import CollectorRegistry

from tests.unit.drift.conftest import SHIFTED_TEST_ROWS, WINDOW
from vigil.datasets import Split
from vigil.drift import DriftCollector, DriftMonitor, DriftReference


def test_collector_exports_drift_per_entity(smd_split: Split, half: int) -> None:
    train = smd_split.train.iloc[:half]
    ref = DriftReference.fit({c: train[c].to_numpy() for c in ["m15", "m18"]}, window=WINDOW)
    quiet, shifted = DriftMonitor(ref), DriftMonitor(ref)
    held = smd_split.train.iloc[half + 60 : half + 60 + WINDOW]
    test = smd_split.test.iloc[SHIFTED_TEST_ROWS]
    quiet.update_frame({c: held[c].to_numpy() for c in ["m15", "m18"]})
    shifted.update_frame({c: test[c].to_numpy() for c in ["m15", "m18"]})
    registry = CollectorRegistry()
    registry.register(DriftCollector(lambda: {"a": quiet.snapshot(), "b": shifted.snapshot()}))
    assert registry.get_sample_value("vigil_drift_detected", {"entity": "a"}) == 0.0
    assert registry.get_sample_value("vigil_drift_detected", {"entity": "b"}) == 1.0
    assert registry.get_sample_value("vigil_drift_reason", {"entity": "b", "reason": "features"}) == 1.0
    assert registry.get_sample_value("vigil_drift_feature_psi", {"entity": "b", "feature": "m15"}) > 0.25
    assert registry.get_sample_value("vigil_drift_window_samples", {"entity": "a"}) == WINDOW
    assert registry.get_sample_value("vigil_drift_ignored_samples_total", {"entity": "a"}) == 0.0
    assert registry.get_sample_value("vigil_drift_alert_rate_changes_total", {"entity": "a"}) == 0.0


def test_collector_with_no_monitors_exports_nothing_per_entity() -> None:
    registry = CollectorRegistry()
    registry.register(DriftCollector(dict))
    assert registry.get_sample_value("vigil_drift_detected", {"entity": "a"}) is None
