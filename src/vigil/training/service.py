"""The stack's trainer: scheduled retraining plus drift checks that trigger it, in their own process.

Training is CPU-heavy numpy/torch work; in the serving process it would compete for the GIL with
the scoring threads, so the local stack runs it as its own component (``vigil retrain --follow``).
Serving only notices that an alias moved and hot-swaps.

Every ``drift_check_interval_s`` each entity's champion is compared with the archive's last
``drift_check_window_s`` (the model card's reference statistics vs the recent window, input and
score drift). The snapshots are exported as ``vigil_drift_*`` on this process's ``/metrics``, where
Prometheus' drift rules alert on them, and the first drifted snapshot of an episode asks the
:class:`~vigil.training.retrainer.Retrainer` for a challenger.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vigil.config import Settings
from vigil.drift import DriftSnapshot
from vigil.drift.metrics import DriftCollector
from vigil.registry import ModelRegistry
from vigil.selfmetrics import component_registry
from vigil.training.data import read_archive_window
from vigil.training.drift_check import check_entity
from vigil.training.retrainer import DriftTrigger, Retrainer

log = logging.getLogger(__name__)


class TrainerService:
    def __init__(self, settings: Settings, registry: ModelRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or ModelRegistry(settings)
        self.retrainer = Retrainer.for_stack(settings, self.registry)
        self.trigger = DriftTrigger(self.retrainer)
        self.snapshots: dict[str, DriftSnapshot] = {}
        self.drift_errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- drift ---------------------------------------------------------------------------------
    def check_drift_once(self) -> dict[str, DriftSnapshot]:
        for entity in self.retrainer.entities():
            if self.registry.champion_version(entity) is None:
                continue  # nothing serves it yet: there is no reference to drift from
            try:
                frame = read_archive_window(entity, self.settings.drift_check_window_s, self.settings)
                if frame.empty:
                    continue
                _version, snapshot = check_entity(self.registry, entity, frame)
            except Exception as exc:  # one entity's bad window must not stop the others
                self.drift_errors += 1
                log.warning("drift check of %s failed: %s", entity, exc)
                continue
            self.snapshots[entity] = snapshot
            if self.trigger.observe(entity, snapshot):
                log.info("drift on %s (%s): challenger requested", entity, ",".join(snapshot.reasons))
        return dict(self.snapshots)

    def _drift_loop(self) -> None:
        while not self._stop.wait(self.settings.drift_check_interval_s):
            self.check_drift_once()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self.settings.retrain_interval_s > 0:
            self.retrainer.start()
        self._thread = threading.Thread(target=self._drift_loop, name="vigil-drift", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.retrainer.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def metrics_registry(self) -> CollectorRegistry:
        registry = component_registry()
        registry.register(DriftCollector(lambda: dict(self.snapshots)))
        registry.register(_RetrainCollector(self))
        return registry


class _RetrainCollector(Collector):
    def __init__(self, service: TrainerService) -> None:
        self.service = service

    def collect(self) -> Any:
        status = self.service.retrainer.status()
        runs = GaugeMetricFamily("vigil_retrain_runs", "Retraining runs per entity since start", labels=["entity"])
        last = GaugeMetricFamily(
            "vigil_retrain_last_finished_timestamp_seconds", "When the entity's last retrain ended", labels=["entity"]
        )
        for entity, st in status.get("entities", {}).items():
            runs.add_metric([entity], float(st.get("runs", 0)))
            if st.get("last_finished"):
                last.add_metric([entity], float(st["last_finished"]))
        yield runs
        yield last
        yield GaugeMetricFamily("vigil_drift_check_errors", "Drift checks that failed", value=self.service.drift_errors)

    def describe(self) -> Any:
        return []
