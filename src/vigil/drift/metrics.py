"""``vigil_drift_*`` metric families built from snapshots at scrape time (no global gauges).

The serving process owns one :class:`~vigil.drift.monitor.DriftMonitor` per entity and registers
``DriftCollector(lambda: {entity: monitor.snapshot() ...})`` on its ``CollectorRegistry``.

>>> from prometheus_client import CollectorRegistry
>>> import numpy as np
>>> from vigil.drift import DriftMonitor, DriftReference
>>> mon = DriftMonitor(DriftReference.fit({"cpu": np.tile([0.1, 0.2], 50)}, window=20))
>>> registry = CollectorRegistry()
>>> registry.register(DriftCollector(lambda: {"host-1": mon.snapshot()}))
>>> registry.get_sample_value("vigil_drift_detected", {"entity": "host-1"})
0.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from vigil.drift.monitor import DriftSnapshot

REASONS = ("features", "score", "alert_rate")


def drift_metric_families(snapshots: Mapping[str, DriftSnapshot]) -> list[Metric]:
    """One family per ``vigil_drift_*`` metric, one sample per entity (and feature)."""
    e, ef = ["entity"], ["entity", "feature"]
    detected = GaugeMetricFamily(
        "vigil_drift_detected", "1 when the entity's inputs, score or alert rate drifted from its model", labels=e
    )
    reason = GaugeMetricFamily(
        "vigil_drift_reason", "1 for each reason the entity counts as drifted", labels=["entity", "reason"]
    )
    ready = GaugeMetricFamily(
        "vigil_drift_window_ready", "1 when the drift window holds enough samples to judge", labels=e
    )
    samples = GaugeMetricFamily("vigil_drift_window_samples", "Samples in the drift window", labels=e)
    ignored = CounterMetricFamily("vigil_drift_ignored_samples", "Steps skipped as data-quality gaps", labels=e)
    fraction = GaugeMetricFamily(
        "vigil_drift_features_drifted_ratio", "Share of features over their drift limit", labels=e
    )
    fpsi = GaugeMetricFamily("vigil_drift_feature_psi", "PSI against the training reference", labels=ef)
    fks = GaugeMetricFamily("vigil_drift_feature_ks", "KS statistic against the training reference", labels=ef)
    fdrift = GaugeMetricFamily("vigil_drift_feature_drifted", "1 when the feature is over its limit", labels=ef)
    spsi = GaugeMetricFamily("vigil_drift_score_psi", "PSI of the calibrated score", labels=e)
    sks = GaugeMetricFamily("vigil_drift_score_ks", "KS statistic of the calibrated score", labels=e)
    rate = GaugeMetricFamily("vigil_drift_alert_rate", "Share of alarmed steps in the drift window", labels=e)
    ref_rate = GaugeMetricFamily("vigil_drift_reference_alert_rate", "Alert rate on the training data", labels=e)
    changes = CounterMetricFamily(
        "vigil_drift_alert_rate_changes", "Alert-rate change points (ADWIN / Page-Hinkley)", labels=e
    )
    for entity, snap in sorted(snapshots.items()):
        detected.add_metric([entity], float(snap.drifted))
        for r in REASONS:
            reason.add_metric([entity, r], float(r in snap.reasons))
        ready.add_metric([entity], float(snap.ready))
        samples.add_metric([entity], float(snap.samples))
        ignored.add_metric([entity], float(snap.ignored_samples))
        fraction.add_metric([entity], snap.drifted_fraction)
        for name, fd in sorted(snap.features.items()):
            # A feature without data yet has no value; exporting NaN would draw as a gap anyway.
            if not math.isnan(fd.psi):
                fpsi.add_metric([entity, name], fd.psi)
                fks.add_metric([entity, name], fd.ks)
            fdrift.add_metric([entity, name], float(fd.drifted))
        if not math.isnan(snap.score_psi):
            spsi.add_metric([entity], snap.score_psi)
            sks.add_metric([entity], snap.score_ks)
        if not math.isnan(snap.alert_rate):
            rate.add_metric([entity], snap.alert_rate)
        if not math.isnan(snap.reference_alert_rate):
            ref_rate.add_metric([entity], snap.reference_alert_rate)
        changes.add_metric([entity], float(snap.alert_rate_changes))
    return [detected, reason, ready, samples, ignored, fraction, fpsi, fks, fdrift, spsi, sks, rate, ref_rate, changes]


class DriftCollector:
    """prometheus-client custom collector; ``source`` returns the current snapshots by entity."""

    def __init__(self, source: Callable[[], Mapping[str, DriftSnapshot]]) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        return drift_metric_families(self._source())

    def describe(self) -> Iterable[Metric]:
        # Empty describe: registering must not call the source (monitors may not exist yet).
        return []
