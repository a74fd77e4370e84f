"""Wiring of the serving process: model source -> fast path -> engine -> incidents and alert dispatcher.

Background threads (all daemons, all stopped by :meth:`DetectionService.close`):

* reloader: polls the model source's champion fingerprint; on change loads and compiles the new
  model and hands it to :meth:`DetectionEngine.set_model` (which swaps atomically);
* ticker: scores steps whose grace period ran out (a signal that never arrives must not stall);
* snapshotter: writes the streaming state to ``$VIGIL_HOME/state`` so a restart needs no warm-up.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vigil.config import Settings
from vigil.contracts import ModelSource
from vigil.detection.alerts import AlertDispatcher, alertmanager_dispatcher
from vigil.detection.assembler import SampleWindow
from vigil.detection.engine import DetectionEngine, LoadedModel, load_snapshot, save_snapshot
from vigil.detection.fast import compile_model, limit_blas_threads
from vigil.detection.group import EngineGroup
from vigil.detection.incidents import IncidentTracker, Topology
from vigil.detection.maintenance import MaintenanceBook
from vigil.detection.model_source import default_source
from vigil.detection.polling import PromQLPoller
from vigil.detection.stats import ServiceStats
from vigil.errors import ConfigError, ModelError, NotFound, UpstreamUnavailable
from vigil.events import Anomaly
from vigil.registry.store import model_name
from vigil.statefile import move_aside, write_atomic

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
                state_path=settings.home / "state" / "alerts.json",
            )
        self.dispatcher = dispatcher
        self.engines = EngineGroup(step_s=self.step_s, stats=self.stats)
        self.incidents = IncidentTracker(
            Topology.from_settings(settings),
            join_s=serving.incident_join_s,
            resolve_s=serving.incident_resolve_s,
            # An alarm that stays on is re-sent every alert_resend_s; a target-down alarm is not re-sent
            # while its entity is silent, and the engine ends it after 600 s of silence.
            stale_s=max(900.0, 3 * serving.alert_resend_s),
        )
        self._incident_lock = threading.Lock()
        self._incident_save_lock = threading.Lock()  # one writer of the file at a time, newest state last
        self.incidents_path = settings.home / "state" / "incidents.json"
        self._restore_incidents()
        self.maintenance = MaintenanceBook(settings.maintenance, settings.home / "state" / "maintenance.json")
        self.snapshot_path = settings.home / "state" / "detection.pkl"
        self.data_timeout_s = serving.data_timeout_s or max(30.0, 10 * self.step_s)
        self.last_error: str = ""
        self._reload_lock = threading.Lock()
        self._failed: dict[str, str] = {}  # model name -> fingerprint that could not be loaded
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = time.time()
        self.poller: PromQLPoller | None = None
        if serving.ingest_mode == "poll":
            self.poller = PromQLPoller(self.engines, settings.effective_prometheus_url)
        elif serving.ingest_mode != "remote_write":
            raise ConfigError(f"serving.ingest_mode must be remote_write or poll, not {serving.ingest_mode!r}")

    def _on_anomaly(self, event: Anomaly, scored_at: float) -> None:
        """Every paging alarm transition (and re-send): grouped into incidents, handed to alerting
        with its incident's id, so chat posts one message per incident. Under declared maintenance an
        alarm pages nobody; its end still goes out, so no alert stays firing through one."""
        if event.active and self.maintenance.covers(event.entity, event.timestamp):
            self.stats.counters.inc("alerts", "maintenance")
            return
        with self._incident_lock:
            self.incidents.observe(event.entity, event.timestamp, event.active, heard=time.time())
            incident = self.incidents.incident_of(event.entity)
        if incident is not None:
            event = replace(event, incident=incident.id)
        if self.dispatcher is not None:
            self.dispatcher.submit(event, scored_at)

    def incident_list(self) -> list[dict[str, Any]]:
        """Open incidents, then the recently resolved ones, newest first."""
        now = time.time()
        with self._incident_lock:
            self.incidents.forget_stale(now)
            self.incidents.expire(now)
            return [i.to_dict() for i in self.incidents.incidents()]

    def incident_feedback(self, incident_id: str, action: str, *, by: str = "", note: str = "") -> dict[str, Any]:
        """An operator's acknowledgement or verdict (:meth:`IncidentTracker.feedback`), saved at once."""
        with self._incident_lock:
            incident = self.incidents.feedback(incident_id, action, by=by, note=note, now=time.time()).to_dict()
        self.save_incidents()
        return incident

    def save_incidents(self) -> None:
        with self._incident_save_lock:
            with self._incident_lock:
                state = json.dumps(self.incidents.state(), separators=(",", ":"))
            try:
                write_atomic(self.incidents_path, state)
            except OSError as exc:  # a full disk costs the incidents of a restart, never serving
                log.error("cannot save the incidents to %s: %s", self.incidents_path, exc)

    def _restore_incidents(self) -> None:
        """The incidents of the last run; a file that cannot be read is moved aside to ``*.corrupt``."""
        if not self.incidents_path.is_file():
            return
        try:
            restored = self.incidents.restore(json.loads(self.incidents_path.read_text()))
        except (OSError, ValueError) as exc:
            aside = move_aside(self.incidents_path)
            log.warning("incidents %s cannot be read (%s); moved to %s", self.incidents_path, exc, aside)
            return
        log.info("restored %d incidents from %s", restored, self.incidents_path)

    # -- model lifecycle -----------------------------------------------------------------------
    @property
    def engine(self) -> EngineGroup:
        """Every served model's streaming state, read as one (views, anomalies, ingest)."""
        return self.engines

    def _new_engine(self) -> DetectionEngine:
        serving = self.settings.serving
        return DetectionEngine(
            step_s=self.step_s,
            entity_label=serving.entity_label,
            max_lag_steps=serving.max_lag_steps,
            grace_s=serving.step_grace_s or max(5.0, 2 * self.step_s),  # Prometheus flushes shards every 5 s
            max_entities=serving.max_entities,
            max_series_per_entity=serving.max_series_per_entity,
            window=SampleWindow(serving.max_sample_age_s, serving.max_sample_ahead_s),
            entity_idle_s=serving.entity_idle_s,
            alert_resend_s=serving.alert_resend_s,
            on_anomaly=self._on_anomaly,
            stats=self.stats,
        )

    def _sources(self) -> dict[str, ModelSource] | None:
        """The models to serve: one per registered entity model, or the single configured source;
        None while the registry cannot say."""
        names = getattr(self.source, "names", None)
        if self.settings.serving_model or names is None:
            return {"": self.source}
        found = names()
        if found is None:
            return None
        if not found:
            return {"": self.source}
        return {name: self.source.for_name(name) for name in found}  # type: ignore[attr-defined]

    def snapshot_file(self, name: str) -> Path:
        return self.snapshot_path if not name else self.snapshot_path.with_name(f"detection-{name}.pkl")

    def reload(self, *, force: bool = False) -> LoadedModel | None:
        """Load every champion that changed (or all, with ``force``); a swap never blocks scoring long."""
        with self._reload_lock:
            sources = self._sources()
            if sources is None:  # a registry hiccup: the engines serving now keep serving, state and all
                self.stats.counters.inc("model_reloads", "registry_unavailable")
                return self.engines.loaded
            for name, engine in self.engines.items():
                if name not in sources:
                    engine.retire()  # its alerts must not fire on, unresolved, after it is gone
                    self.engines.remove(name)
            several = len(sources) > 1
            failures: list[ModelError] = []
            for name, source in sources.items():
                engine = self.engines.get(name) or self.engines.add(name, self._new_engine())
                engine.entity_filter = (lambda entity, n=name: model_name(entity) == n) if several else None
                try:
                    self._reload_one(name, source, engine, force)
                except ModelError as exc:
                    failures.append(exc)
            if failures and self.engines.loaded is None:
                raise failures[0]
            return self.engines.loaded

    def _reload_one(self, name: str, source: ModelSource, engine: DetectionEngine, force: bool) -> None:
        ref = source.champion()
        current = engine.loaded
        if ref is None:
            return
        engine.set_paging(ref.extra.get("mode", "paging") != "shadow")
        if current is not None and ref.fingerprint == current.fingerprint and not force:
            return
        if self._failed.get(name) == ref.fingerprint and not force:
            return  # the same broken artifact again: wait for a new champion instead of retrying each poll
        try:
            model = source.load(ref)
            scorer, info = compile_model(model) if self.settings.serving.fast_path else (model, {"fast": False})
            loaded = LoadedModel(
                version=ref.version,
                fingerprint=ref.fingerprint,
                model=model,
                scorer=scorer,
                loaded_at=time.time(),
                fast=bool(info.get("fast")),
                info={**info, "model": name} if name else info,
            )
        except Exception as exc:  # an incompatible or broken artifact must degrade serving, never stop it
            if not isinstance(exc, ModelError):
                log.exception("loading model %s version %s raised", name or "-", ref.version)
                exc = ModelError(f"model {name or '-'} v{ref.version} cannot be loaded: {type(exc).__name__}: {exc}")
            self.last_error = str(exc)
            self.stats.counters.inc("model_reloads", "failed")
            log.error(
                "model %s reload failed, keeping %s: %s", name or "-", current.version if current else "none", exc
            )
            self._failed[name] = ref.fingerprint
            if current is None:
                raise exc from None
            return
        self._failed.pop(name, None)
        engine.set_model(loaded)
        if current is None:
            snap = load_snapshot(self.snapshot_file(name))
            if snap:
                restored = engine.restore(snap)
                log.info("restored %d entities from %s", restored, self.snapshot_file(name))
        self.last_error = ""

    def _known_sources(self) -> dict[str, ModelSource]:
        sources = self._sources()
        if sources is None:
            raise UpstreamUnavailable("the model registry cannot be read right now", hint="see the service log")
        return sources

    def promote(self, version: str, model: str = "") -> LoadedModel | None:
        sources = self._known_sources()
        if model and model not in sources:
            raise NotFound(f"no served model named {model!r}", hint=f"served: {', '.join(sorted(sources))}")
        if not model and len(sources) > 1:
            raise NotFound("several models are served; say which", hint=f"one of {', '.join(sorted(sources))}")
        source = sources[model] if model else next(iter(sources.values()))
        source.promote(version)
        return self.reload()

    @staticmethod
    def _describe(loaded: LoadedModel) -> dict[str, Any]:
        return {
            "version": loaded.version,
            "fingerprint": loaded.fingerprint,
            "loaded_at": loaded.loaded_at,
            "fast_path": loaded.fast,
            "fast_path_info": {k: v for k, v in loaded.info.items() if k != "fast"},
            "signals": loaded.signals,
            "features": list(loaded.model.feature_names_),
            "threshold": float(loaded.model.threshold_),
        }

    def models(self) -> dict[str, Any]:
        loaded = self.engines.loaded
        sources = self._known_sources()
        first = next(iter(sources.values()))
        champion = first.champion()
        return {
            "serving": None if loaded is None else self._describe(loaded),
            "models": {
                name or "default": {**self._describe(engine.loaded), "mode": "paging" if engine.paging else "shadow"}
                for name, engine in self.engines.items()
                if engine.loaded is not None
            },
            "champion": None if champion is None else champion.version,
            "versions": [r.version for s in sources.values() for r in s.versions()],
            "last_error": self.last_error,
        }

    # -- health --------------------------------------------------------------------------------
    def readiness(self) -> Readiness:
        reasons = []
        if self.engines.loaded is None:
            reasons.append("no model loaded" + (f": {self.last_error}" if self.last_error else ""))
        age = time.time() - self.engines.last_ingest_at
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
                self.engines.tick()
            except Exception:
                log.exception("ticker")

    def _snapshotter(self) -> None:
        while not self._stop.wait(self.settings.serving.snapshot_interval_s):
            self.save_snapshot()
            self.save_incidents()

    def save_snapshot(self) -> Path | None:
        saved = None
        for name, engine in self.engines.items():
            if engine.loaded is None:
                continue
            try:
                save_snapshot(engine, self.snapshot_file(name))
                saved = saved or self.snapshot_file(name)
            except Exception:
                log.exception("snapshot of %s failed", name or "the model")
        return saved

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()
        if self.poller is not None:
            self.poller.close()
        self.save_snapshot()
        self.save_incidents()
        if self.dispatcher is not None:
            self.dispatcher.close()
