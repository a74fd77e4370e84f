"""Drift detection (pure core): inputs, calibrated score and alert rate against a model's reference.

Training fits a :class:`DriftReference` on the data the model learned from and stores it in the
model bundle (``drift_reference.json``); serving keeps one :class:`DriftMonitor` per entity, feeds
it every scored step and exports :func:`drift_metric_families` through :class:`DriftCollector`.
"""

from vigil.drift.metrics import DriftCollector, drift_metric_families
from vigil.drift.monitor import DriftConfig, DriftMonitor, DriftSnapshot, FeatureDrift
from vigil.drift.reference import Baseline, DriftReference
from vigil.drift.stats import Reference, ks_statistic, ks_test, psi

__all__ = [
    "Baseline",
    "DriftCollector",
    "DriftConfig",
    "DriftMonitor",
    "DriftReference",
    "DriftSnapshot",
    "FeatureDrift",
    "Reference",
    "drift_metric_families",
    "ks_statistic",
    "ks_test",
    "psi",
]
