"""Wiring of the serving process: model source -> fast path -> engine -> alert dispatcher.

Background threads (all daemons, all stopped by :meth:`DetectionService.close`):

* reloader: polls the model source's champion fingerprint; on change loads and compiles the new
  model and hands it to :meth:`DetectionEngine.set_model` (which swaps atomically);
* ticker: scores steps whose grace period ran out (a signal that never arrives must not stall);
* snapshotter: writes the streaming state to ``$VIGIL_HOME/state`` so a restart needs no warm-up.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil.config import Settings
from vigil.detection.alerts import AlertDispatcher, alertmanager_dispatcher
from vigil.detection.engine import DetectionEngine, LoadedModel, load_snapshot, save_snapshot
from vigil.detection.fast import compile_model, limit_blas_threads
from vigil.detection.model_source import ModelRef, ModelSource, default_source
from vigil.detection.polling import PromQLPoller
from vigil.detection.stats import ServiceStats
from vigil.errors import ConfigError, ModelError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: list[str]


class DetectionService:
    def __init__(
        self,
        settings: Settings,
        *,
        source: ModelSource | None = None,
        dispatcher: AlertDispatcher | None = None,
        send_alerts: bool = True,
    ) -> None:
        self.settings = settings
        serving = settings.serving
        self.step_s = serving.step_s or settings.scrape_interval_s
        self.stats = ServiceStats()
        self.source = source or default_source(settings)
        if dispatcher is None and send_alerts:
            dispatcher = alertmanager_dispatcher(
                settings.effective_alertmanager_url,
                stats=self.stats,
                resend_s=serving.alert_resend_s,
                prometheus_url=settings.effective_prometheus_url,
            )
        self.dispatcher = dispatcher
        self.engine = DetectionEngine(
            step_s=self.step_s,
            entity_label=serving.entity_label,
            max_lag_steps=serving.max_lag_steps,
            grace_s=serving.step_grace_s or max(5.0, 2 * self.step_s),  # Prometheus flushes shards every 5 s
            max_entities=serving.max_entities,
            alert_resend_s=serving.alert_resend_s,
            on_anomaly=dispatcher.submit if dispatcher else None,
            stats=self.stats,
        )
        self.snapshot_path = settings.home / "state" / "detection.pkl"
        self.data_timeout_s = serving.data_timeout_s or max(30.0, 10 * self.step_s)
        self.last_error: str = ""
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = time.time()
        self.poller: PromQLPoller | None = None
        if serving.ingest_mode == "poll":
            self.poller = PromQLPoller(self.engine, settings.effective_prometheus_url)
        elif serving.ingest_mode != "remote_write":
            raise ConfigError(f"serving.ingest_mode must be remote_write or poll, not {serving.ingest_mode!r}")

    # -- model lifecycle -----------------------------------------------------------------------
    def load_ref(self, ref: ModelRef) -> LoadedModel:
        model = self.source.load(ref)
        scorer, info = compile_model(model) if self.settings.serving.fast_path else (model, {"fast": False})
        return LoadedModel(
            version=ref.version,
            fingerprint=ref.fingerprint,
            model=model,
            scorer=scorer,
            loaded_at=time.time(),
            fast=bool(info.get("fast")),
            info=info,
        )

    def reload(self, *, force: bool = False) -> LoadedModel | None:
        """Load the champion if it changed (or ``force``); the swap itself never blocks scoring long."""
        with self._reload_lock:
            ref = self.source.champion()
            current = self.engine.loaded
            if ref is None:
                return current
            if current is not None and ref.fingerprint == current.fingerprint and not force:
                return current
            try:
                loaded = self.load_ref(ref)
            except ModelError as exc:
                self.last_error = str(exc)
                self.stats.counters.inc("model_reloads", "failed")
                log.error("model reload failed, keeping %s: %s", current.version if current else "none", exc)
                if current is None:
                    raise
                return current
            first = current is None
            self.engine.set_model(loaded)
            if first:
                snap = load_snapshot(self.snapshot_path)
                if snap:
                    restored = self.engine.restore(snap)
                    log.info("restored %d entities from %s", restored, self.snapshot_path)
            self.last_error = ""
            return loaded

    def promote(self, version: str) -> LoadedModel | None:
        self.source.promote(version)
        return self.reload()

    def models(self) -> dict[str, Any]:
        loaded = self.engine.loaded
        champion = self.source.champion()
        return {
            "serving": None
            if loaded is None
            else {
                "version": loaded.version,
                "fingerprint": loaded.fingerprint,
                "loaded_at": loaded.loaded_at,
                "fast_path": loaded.fast,
                "fast_path_info": {k: v for k, v in loaded.info.items() if k != "fast"},
                "signals": loaded.signals,
                "features": list(loaded.model.feature_names_),
                "threshold": float(loaded.model.threshold_),
            },
            "champion": None if champion is None else champion.version,
            "versions": [r.version for r in self.source.versions()],
            "last_error": self.last_error,
        }

    # -- health --------------------------------------------------------------------------------
    def readiness(self) -> Readiness:
        reasons = []
        if self.engine.loaded is None:
            reasons.append("no model loaded" + (f": {self.last_error}" if self.last_error else ""))
        age = time.time() - self.engine.last_ingest_at
        if age > self.data_timeout_s:
            reasons.append("no data received yet" if age == float("inf") else f"no data for {age:.0f}s")
            if self.poller is not None and self.poller.last_error:
                reasons.append(f"PromQL polling: {self.poller.last_error}")
        return Readiness(not reasons, reasons)

    # -- background ----------------------------------------------------------------------------
    def start(self) -> None:
        limit_blas_threads()
        try:
            self.reload()
        except ModelError as exc:
            log.warning("starting without a model: %s", exc)
        for name, target in (("reloader", self._reloader), ("ticker", self._ticker), ("snapshot", self._snapshotter)):
            thread = threading.Thread(target=target, name=f"vigil-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.poller is not None:
            self.poller.start()

    def _reloader(self) -> None:
        while not self._stop.wait(self.settings.serving.model_poll_s):
            try:
                self.reload()
            except Exception:
                log.exception("reloader")

    def _ticker(self) -> None:
        while not self._stop.wait(max(0.05, self.step_s / 4)):
            try:
                self.engine.tick()
            except Exception:
                log.exception("ticker")

    def _snapshotter(self) -> None:
        while not self._stop.wait(self.settings.serving.snapshot_interval_s):
            self.save_snapshot()

    def save_snapshot(self) -> Path | None:
        if self.engine.loaded is None:
            return None
        try:
            save_snapshot(self.engine, self.snapshot_path)
        except Exception:
            log.exception("snapshot failed")
            return None
        return self.snapshot_path

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()
        if self.poller is not None:
            self.poller.close()
        self.save_snapshot()
        if self.dispatcher is not None:
            self.dispatcher.close()
