"""The streaming detection state shared by every request thread of one serving process.

One :class:`~vigil.contracts.StreamScorer` per entity, fed step by step from remote_write (or the
PromQL poller). Besides the scorer's own state each entity keeps a ring buffer of its last raw
steps, which serves two purposes:

* hot reload: a new model's streams are warmed up by replaying the ring in a background thread,
  then the few steps that arrived meanwhile are replayed under the lock and the model is swapped
  in one assignment, so no request fails and no step is skipped;
* restart: the ring and the scorers' ``state_dict()`` are snapshotted to ``$VIGIL_HOME``, so a
  restarted service scores the next step without a long warm-up.

State is per process, which is why ``vigil serve`` runs one gunicorn worker with threads.
"""

from __future__ import annotations

import logging
import math
import pickle
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vigil.contracts import ScoringModel, StepResult, StreamScorer
from vigil.detection.assembler import (
    CatalogAssembler,
    IngestCounts,
    ReadyStep,
    SampleWindow,
    StepAssembler,
    catalog_kind,
)
from vigil.detection.stats import ServiceStats
from vigil.errors import ModelError
from vigil.events import Anomaly, Contribution
from vigil.ingest.remote_write import DecodedSeries
from vigil.statefile import READ, START_AFRESH, FormatCheck, move_aside, write_atomic

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1
DEFAULT_RING_STEPS = 256
# The contribution a silent entity's alarm carries: Prometheus' name for "the target answers".
SILENCE_METRIC = "up"


@dataclass(frozen=True)
class LoadedModel:
    version: str
    fingerprint: str
    model: ScoringModel  # the reference implementation, as loaded
    scorer: ScoringModel  # what serving calls: the compiled fast path, or ``model`` itself
    loaded_at: float
    fast: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def signals(self) -> list[str]:
        return list(self.model.metric_names_)


def ring_steps(model: ScoringModel) -> int:
    """How many past steps a new stream needs to be fully warm (the model says, else a default)."""
    for attr in ("warmup_steps_", "warmup_steps", "window_", "max_window_"):
        value = getattr(model, attr, None)
        if isinstance(value, int | np.integer) and value > 0:
            return int(value) + 1
    return DEFAULT_RING_STEPS


class _Ring:
    """Fixed-size ring of raw steps as a float array, columns in ``signals`` order."""

    def __init__(self, signals: list[str], size: int) -> None:
        self.signals = signals
        self.ts = np.full(size, np.nan)
        self.values = np.full((size, len(signals)), np.nan)
        self.seq = 0  # steps ever appended

    def append(self, timestamp: float, row: Mapping[str, float]) -> None:
        i = self.seq % len(self.ts)
        self.ts[i] = timestamp
        self.values[i] = [row.get(name, math.nan) for name in self.signals]
        self.seq += 1

    def tail(self, n: int | None = None) -> list[tuple[float, dict[str, float]]]:
        size = len(self.ts)
        held = min(self.seq, size)
        n = held if n is None else min(n, held)
        out = []
        for k in range(self.seq - n, self.seq):
            i = k % size
            out.append((float(self.ts[i]), dict(zip(self.signals, self.values[i].tolist(), strict=True))))
        return out


@dataclass
class EntityState:
    stream: StreamScorer
    ring: _Ring
    last: StepResult | None = None
    last_step_ts: float = math.nan
    alarm_active: bool = False
    last_alarm_ts: float = -math.inf
    last_sent_at: float = -math.inf
    updated_at: float = -math.inf  # wall clock of the last scored step
    seen_at: float = -math.inf  # wall clock of the last step assembled, scored or not
    silent: bool = False  # stopped reporting while others go on: alarmed as target down
    missing_steps: int = 0  # consecutive steps with every signal missing (its series went stale)


def _silence_result(st: EntityState) -> StepResult:
    """A silent entity as a step: certain anomaly, one contribution, `up` 0 against 1 (target down,
    in the terms the explainer and the runbooks use)."""
    return StepResult(
        timestamp=st.last_step_ts,
        score=1.0,
        above_threshold=True,
        alarm=True,
        contributions=(Contribution(SILENCE_METRIC, 0.0, 1.0, 1.0),),
    )


@dataclass(frozen=True)
class EntityView:
    """What the metrics collector and the API read about one entity."""

    entity: str
    timestamp: float
    score: float
    alarm: bool
    above_threshold: bool
    top_metric: str
    top_share: float
    detector_scores: dict[str, float]


AnomalyCallback = Callable[[Anomaly, float], None]  # (event, scored_at monotonic seconds)


class DetectionEngine:
    def __init__(
        self,
        *,
        step_s: float = 1.0,
        entity_label: str = "instance",
        max_lag_steps: int = 5,
        grace_s: float = 2.0,
        max_entities: int = 2_000,
        max_series_per_entity: int = 2_000,
        window: SampleWindow = SampleWindow(),
        alert_hold_s: float = 0.0,
        alert_resend_s: float = 60.0,
        silence_s: float = 0.0,
        silence_max_s: float = 600.0,
        stale_steps: int = 5,
        entity_idle_s: float = 3600.0,
        on_anomaly: AnomalyCallback | None = None,
        stats: ServiceStats | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.step_s = step_s
        self.entity_label = entity_label
        self.max_lag_steps = max_lag_steps
        self.grace_s = grace_s
        self.max_entities = max_entities
        self.max_series_per_entity = max_series_per_entity
        self.window = window
        # An alarm from the aggregation stage may be a single-step pulse; keep the alert up this long
        # (0: five of the model's steps, none when the model's own alarm hold is that long already).
        self.alert_hold_s = alert_hold_s
        self.alert_resend_s = alert_resend_s
        # An entity that stops reporting while Vigil still gets data for others (a crashed service, a
        # dead exporter) raises an alarm of its own after this long (0: ten of the model's steps, at
        # least 5 s); after silence_max_s it is considered gone and the alarm resolves.
        self.silence_s = silence_s
        self.silence_max_s = silence_max_s
        # When a target dies Prometheus writes stale markers for its series: the entity's last step
        # then has every value missing, and nothing follows until it is back. That is evidence, not
        # mere absence, so the silence alarm waits this many steps instead of the usual ten. (The
        # missing steps themselves arrive only at recovery, in one catch-up burst: alarming on them
        # would page after the outage.)
        self.stale_steps = stale_steps
        # An entity without a step this long (a replaced host, a churned label value) is forgotten:
        # its stream, ring and assembly state go, so memory follows the live fleet, not its history.
        self.entity_idle_s = max(entity_idle_s, silence_max_s)
        self._next_eviction = -math.inf
        self.on_anomaly = on_anomaly
        # A model in shadow mode is scored and exported like any other but never hands an anomaly on:
        # no Alertmanager alert, no chat message, until an operator lets it page.
        self.paging = True
        self.stats = stats or ServiceStats()
        self.clock = clock
        # With one model per entity, each engine scores only the entities its model was trained for.
        self.entity_filter: Callable[[str], bool] | None = None
        self._lock = threading.RLock()
        self._loaded: LoadedModel | None = None
        self._assembler: StepAssembler | CatalogAssembler | None = None
        self._entities: dict[str, EntityState] = {}
        self.last_ingest_at: float = -math.inf  # wall clock of the last accepted sample
        self.last_scored_at: float = -math.inf

    # -- model ---------------------------------------------------------------------------------
    @property
    def loaded(self) -> LoadedModel | None:
        return self._loaded

    @staticmethod
    def model_step(model: ScoringModel, default: float) -> float:
        """The model's own step length: streams must be fed on the grid they were trained on."""
        step = getattr(model, "step_", None)
        return float(step) if isinstance(step, int | float) and step > 0 else default

    def _new_assembler(self, signals: list[str], step_s: float) -> StepAssembler | CatalogAssembler:
        kind = catalog_kind(signals)
        if kind is not None:
            return CatalogAssembler(
                signals,
                kind,
                step_s=step_s,
                grace_s=self.grace_s,
                window=self.window,
                max_entities=self.max_entities,
                max_series_per_entity=self.max_series_per_entity,
            )
        return StepAssembler(
            signals,
            entity_label=self.entity_label,
            step_s=step_s,
            max_lag_steps=self.max_lag_steps,
            grace_s=self.grace_s,
            max_entities=self.max_entities,
            window=self.window,
        )

    @property
    def catalog_kind(self) -> str | None:
        """The catalog entity kind (host, service) this engine's model reads, or None for a model whose
        entities are named by a configured label instead."""
        assembler = self._assembler
        return assembler.kind if isinstance(assembler, CatalogAssembler) else None

    def set_model(self, new: LoadedModel) -> None:
        """Swap in ``new``: warm its streams outside the lock, catch up and swap under it."""
        size = ring_steps(new.model)
        with self._lock:
            plan = {e: (st.ring.seq, st.ring.tail()) for e, st in self._entities.items()}
        warmed: dict[str, tuple[StreamScorer, int]] = {}
        for entity, (seq, steps) in plan.items():
            stream = new.scorer.new_stream()
            for ts, row in steps[-size:]:
                stream.update(ts, row)
            warmed[entity] = (stream, seq)
        with self._lock:
            signals = new.signals
            for entity, st in self._entities.items():
                stream, seq = warmed.get(entity, (None, 0))
                if stream is None:
                    stream = new.scorer.new_stream()
                    missed = st.ring.tail(size)
                else:
                    missed = st.ring.tail(st.ring.seq - seq)  # arrived while we were warming
                for ts, row in missed:
                    stream.update(ts, row)
                ring = _Ring(signals, max(size, len(st.ring.ts)))
                for ts, row in st.ring.tail():
                    ring.append(ts, row)
                st.stream, st.ring = stream, ring
            old = self._assembler
            step = self.model_step(new.model, self.step_s)
            if old is None or old.signals != signals or old.step_s != step:
                self._assembler = self._new_assembler(signals, step)
                if old is not None:
                    self._assembler.restore_positions(old.last_emitted())
            self._loaded = new
        self.stats.counters.inc("model_reloads", "ok")
        log.info("serving model %s (%s path)", new.version, "fast" if new.fast else "reference")

    # -- ingest --------------------------------------------------------------------------------
    def ingest(self, series: Iterable[DecodedSeries], received_at: float | None = None) -> IngestCounts:
        """Assemble and score; returns what happened to the samples. Thread-safe."""
        counts = IngestCounts()
        loaded = self._loaded
        if loaded is None or self._assembler is None:
            raise ModelError("no model loaded yet", hint="train one with `vigil train` or wait for the reloader")
        now = self.clock() if received_at is None else received_at
        events: list[tuple[Anomaly, float]] = []
        with self._lock:
            ready = self._assembler.add(series, now, counts)
            self._score(ready, events)
        self._publish(counts, events)
        return counts

    def score_steps(self, ready: list[ReadyStep]) -> None:
        """Score already assembled steps (a recording's model inputs), as ingest would."""
        events: list[tuple[Anomaly, float]] = []
        with self._lock:
            self._score(ready, events)
        self._publish(IngestCounts(), events)

    def tick(self) -> int:
        """Score steps whose grace period ran out; the service calls this about once per step."""
        if self._assembler is None:
            return 0
        events: list[tuple[Anomaly, float]] = []
        now = self.clock()
        with self._lock:
            ready = self._assembler.flush_due(now)
            self._score(ready, events)
            self._expire_alarms(events)
            if now >= self._next_eviction:
                self._next_eviction = now + min(60.0, self.entity_idle_s)
                self._evict_idle(now - self.entity_idle_s, now)
        self._publish(IngestCounts(), events)
        return len(ready)

    def set_paging(self, paging: bool) -> None:
        """Let this engine's anomalies page, or hold them back (shadow); alerts already firing
        resolve on the way into shadow, since nothing would resolve them later."""
        with self._lock:
            if paging == self.paging:
                return
            if not paging:
                self.resolve_all()
            self.paging = paging
            # Back to paging: whatever is alarmed now is news to Alertmanager.
            events = (
                []
                if not paging
                else [
                    (self._event(e, self._current(st), active=True), time.perf_counter())
                    for e, st in self._entities.items()
                    if st.alarm_active and self._current(st) is not None
                ]
            )
        self._publish(IngestCounts(), events)
        log.info(
            "engine for model %s now %s",
            self._loaded.version if self._loaded else "-",
            "pages" if paging else "runs in shadow",
        )

    def retire(self) -> None:
        """Resolve every firing alert and hand nothing on ever after (its model is gone)."""
        with self._lock:
            self.resolve_all()
            self.on_anomaly = None  # a step scored concurrently must not re-fire what was resolved

    def resolve_all(self) -> int:
        """Resolve every firing alert (the engine goes into shadow or is retired); returns how many."""
        events: list[tuple[Anomaly, float]] = []
        with self._lock:
            for entity, st in self._entities.items():
                if not st.alarm_active:
                    continue
                st.alarm_active = False
                result = _silence_result(st) if st.silent else st.last
                st.silent = False
                if result is not None:
                    events.append((self._event(entity, result, active=False), time.perf_counter()))
            self._publish(IngestCounts(), events, even_in_shadow=True)
        return len(events)

    def _evict_idle(self, before: float, now: float) -> None:
        if self._assembler is None:
            return
        # Counted once, when the last of its state goes (the engine's may outlive the assembler's while
        # its alert resolves).
        gone = {e for e in self._assembler.forget_idle(before, now) if e not in self._entities}
        for entity, st in list(self._entities.items()):
            if st.seen_at < before and not st.alarm_active and not st.silent:
                del self._entities[entity]
                gone.add(entity)
        if gone:
            self.stats.counters.inc("entities", "evicted", len(gone))
            log.info("forgot %d entities idle for %.0f s or more", len(gone), self.entity_idle_s)

    def _publish(
        self, counts: IngestCounts, events: list[tuple[Anomaly, float]], *, even_in_shadow: bool = False
    ) -> None:
        for name, value in counts.as_dict().items():
            if value:
                self.stats.counters.inc("samples", name, value)
        if counts.accepted:
            self.last_ingest_at = self.clock()
        if self.on_anomaly is not None and (self.paging or even_in_shadow):
            for event, scored_at in events:
                try:
                    self.on_anomaly(event, scored_at)
                except Exception:  # alert delivery must never break ingest
                    log.exception("anomaly hand-off failed")

    def _entity(self, entity: str, loaded: LoadedModel) -> EntityState:
        st = self._entities.get(entity)
        if st is None:
            st = EntityState(loaded.scorer.new_stream(), _Ring(loaded.signals, ring_steps(loaded.model)))
            self._entities[entity] = st
        return st

    def _score(self, ready: list[ReadyStep], events: list[tuple[Anomaly, float]]) -> None:
        loaded = self._loaded
        if loaded is None:
            return
        accept = self.entity_filter
        for step in ready:
            if accept is not None and not accept(step.entity):
                continue
            st = self._entity(step.entity, loaded)
            missing = all(v != v for v in step.values.values())
            st.missing_steps = st.missing_steps + 1 if missing else 0
            if st.silent and not missing:
                st.silent = False
                st.last_alarm_ts = step.timestamp  # the usual hold runs from the moment it is back
            st.seen_at = step.received_at
            st.ring.append(step.timestamp, step.values)
            try:
                result = st.stream.update(step.timestamp, step.values)
            except Exception:
                # One entity's bad state must not stop the others; start it afresh.
                log.exception("scoring %s failed; restarting its stream", step.entity)
                self.stats.counters.inc("scoring_errors")
                st.stream = loaded.scorer.new_stream()
                continue
            st.last_step_ts = step.timestamp
            if result is None:
                self.stats.counters.inc("steps", "warming_up")
                continue
            scored_mono = time.perf_counter()
            now = self.clock()
            self.last_scored_at = now
            self.stats.counters.inc("steps", "scored")
            self.stats.ingest_to_score.observe(max(0.0, now - step.received_at))
            st.last = result
            st.updated_at = now
            if st.silent:
                continue  # alarmed as target down until a step with data arrives
            if result.alarm:
                st.last_alarm_ts = step.timestamp
                if not st.alarm_active or now - st.last_sent_at >= self.alert_resend_s:
                    st.alarm_active = True
                    st.last_sent_at = now
                    events.append((self._event(step.entity, result, active=True), scored_mono))
            elif st.alarm_active and step.timestamp - st.last_alarm_ts >= self._hold_s():
                st.alarm_active = False
                events.append((self._event(step.entity, result, active=False), scored_mono))

    @property
    def _model_step_s(self) -> float:
        """The step of the model being served (its assembler's), else the configured one."""
        return self._assembler.step_s if self._assembler else self.step_s

    def _hold_s(self) -> float:
        if self.alert_hold_s:
            return self.alert_hold_s
        # A model whose alarm stage holds for 5 steps or more never pulses; a second hold here would
        # only keep the alert up after the model has seen the host recover.
        if int(getattr(self._loaded.model if self._loaded else None, "alarm_hold", 0) or 0) >= 5:
            return 0.0
        return 5 * self._model_step_s

    def _silence_after_s(self) -> float:
        if self.silence_s:
            return self.silence_s
        return max(10 * self._model_step_s, 5.0)

    def newest_update(self) -> float:
        """Wall clock of the newest scored step of any entity here (-inf before the first)."""
        with self._lock:
            return max((st.updated_at for st in self._entities.values()), default=-math.inf)

    def check_silence(self, reference: float) -> int:
        """Alarm every entity whose last scored step is ``silence_s`` older than ``reference`` (the
        newest step Vigil scored for any entity); returns how many fell silent just now.

        The reference comes from the data, not the clock, so a stalled remote_write feed (nothing
        arrives for anyone) raises no alarm here; the data-quality rules report that.
        """
        events: list[tuple[Anomaly, float]] = []
        after = self._silence_after_s()
        stale_after = min(after, self.stale_steps * self._model_step_s)
        with self._lock:
            for entity, st in self._entities.items():
                if st.last is None or st.silent:
                    continue
                if reference - st.updated_at <= (stale_after if st.missing_steps else after):
                    continue
                self._go_silent(entity, st, events)
        self._publish(IngestCounts(), events)
        return len(events)

    def _go_silent(self, entity: str, st: EntityState, events: list[tuple[Anomaly, float]]) -> None:
        st.silent = True
        st.alarm_active = True
        st.last_sent_at = self.clock()
        events.append((self._silence_event(entity, st), time.perf_counter()))
        self.stats.counters.inc("entities", "silent")

    def _expire_alarms(self, events: list[tuple[Anomaly, float]]) -> None:
        # An entity that stopped sending data must not keep its alert firing forever.
        now = self.clock()
        for entity, st in self._entities.items():
            if st.silent:
                if now - st.updated_at > self.silence_max_s:
                    st.silent = st.alarm_active = False
                    events.append((self._silence_event(entity, st, active=False), time.perf_counter()))
                continue
            if st.alarm_active and st.last is not None and now - st.updated_at > max(self._hold_s(), 60.0):
                st.alarm_active = False
                events.append((self._event(entity, st.last, active=False), time.perf_counter()))

    def _silence_event(self, entity: str, st: EntityState, *, active: bool = True) -> Anomaly:
        return self._event(entity, _silence_result(st), active=active)

    @staticmethod
    def _current(st: EntityState) -> StepResult | None:
        """What readers see of an entity: its last scored step, or its silence."""
        return _silence_result(st) if st.silent else st.last

    def _event(self, entity: str, result: StepResult, *, active: bool) -> Anomaly:
        loaded = self._loaded
        return Anomaly(
            entity=entity,
            timestamp=result.timestamp,
            score=float(result.score),
            threshold=(
                float(result.threshold)
                if math.isfinite(result.threshold)
                else float(loaded.model.threshold_)
                if loaded
                else math.nan
            ),
            active=active,
            contributions=result.contributions,
            detector_scores=dict(result.detector_scores),
            model_version=loaded.version if loaded else "",
        )

    # -- reading -------------------------------------------------------------------------------
    def views(self) -> list[EntityView]:
        with self._lock:
            items = [(e, self._current(st), st.alarm_active) for e, st in self._entities.items() if st.last is not None]
        out = []
        for entity, res, active in items:
            if res is None:
                continue
            top = res.contributions[0] if res.contributions else None  # the lead signal, not the largest share
            out.append(
                EntityView(
                    entity=entity,
                    timestamp=res.timestamp,
                    score=float(res.score),
                    alarm=active,
                    above_threshold=bool(res.above_threshold),
                    top_metric=top.metric if top else "",
                    top_share=float(top.share) if top else 0.0,
                    detector_scores=dict(res.detector_scores),
                )
            )
        return out

    def anomalies(self) -> list[Anomaly]:
        """Every entity's latest state as an event with its full evidence (for ChatOps)."""
        with self._lock:
            return [
                self._event(e, self._current(st), active=st.alarm_active) for e, st in self._entities.items() if st.last
            ]

    def entity_count(self) -> int:
        return len(self._entities)

    # -- snapshot ------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            loaded = self._loaded
            entities = {}
            for entity, st in self._entities.items():
                try:
                    stream_state = st.stream.state_dict()
                except Exception:
                    stream_state = None
                entities[entity] = {
                    "stream": stream_state,
                    "ring": st.ring.tail(),
                    "alarm_active": st.alarm_active,
                    "last_alarm_ts": st.last_alarm_ts,
                    "last_step_ts": st.last_step_ts,
                }
            positions = self._assembler.last_emitted() if self._assembler else {}
        return {
            "format": SNAPSHOT_FORMAT,
            "fingerprint": loaded.fingerprint if loaded else "",
            "step_s": self._model_step_s,
            "entities": entities,
            "positions": positions,
            "saved_at": self.clock(),
        }

    def restore(self, snap: Mapping[str, Any]) -> int:
        """Load a snapshot taken by :meth:`snapshot`; call after :meth:`set_model`. Returns entities restored."""
        loaded = self._loaded
        step = self._model_step_s
        if loaded is None or snap.get("format") != SNAPSHOT_FORMAT or snap.get("step_s") != step:
            return 0
        try:
            age = self.clock() - float(snap.get("saved_at", -math.inf))
            entities = dict(snap.get("entities", {}))
            positions = {str(e): float(t) for e, t in dict(snap.get("positions", {})).items()}
        except (TypeError, ValueError) as exc:
            log.warning("detection snapshot is malformed (%r); starting cold", exc)
            return 0
        if age > self.window.max_age_s:
            # Its state describes a past the window no longer accepts samples from; resuming it would
            # only make the streams bridge the gap. Every entity starts cold.
            log.warning("detection snapshot is %.0f s old (limit %.0f s); starting cold", age, self.window.max_age_s)
            return 0
        same_model = snap.get("fingerprint") == loaded.fingerprint
        size = ring_steps(loaded.model)
        restored = 0
        with self._lock:
            for entity, saved in entities.items():
                st = EntityState(loaded.scorer.new_stream(), _Ring(loaded.signals, size), seen_at=self.clock())
                try:
                    for ts, row in saved["ring"][-size:]:
                        st.ring.append(ts, row)
                    if same_model and saved.get("stream") is not None:
                        st.stream.load_state(saved["stream"])
                    else:  # another model: its features are rebuilt from the raw steps
                        for ts, row in saved["ring"][-size:]:
                            st.stream.update(ts, row)
                    st.alarm_active = bool(saved.get("alarm_active"))
                    st.last_alarm_ts = float(saved.get("last_alarm_ts", -math.inf))
                    st.last_step_ts = float(saved.get("last_step_ts", math.nan))
                except Exception as exc:  # noqa: BLE001 - any shape of state must start cold, never crash the worker
                    # A state written by another version of the code: this entity starts cold, the rest resume.
                    log.warning("snapshot state of %s is unreadable (%r); it starts cold", entity, exc)
                    continue
                self._entities[entity] = st
                restored += 1
            if self._assembler is not None:
                self._assembler.restore_positions(positions)
        return restored


def save_snapshot(engine: DetectionEngine, path: Path) -> None:
    write_atomic(path, pickle.dumps(engine.snapshot(), protocol=pickle.HIGHEST_PROTOCOL))


def load_snapshot(path: Path) -> dict[str, Any] | None:
    """The snapshot at ``path``; None when there is none. One that cannot be read (truncated by a
    full disk, written by another version of the code) is logged and moved aside to ``*.corrupt``,
    so every entity starts cold and the next snapshot does not overwrite the evidence."""
    # Only Vigil writes this file, inside $VIGIL_HOME (mode 0700); it is never read from elsewhere.
    if not path.is_file():
        return None
    try:
        data = _read_snapshot(path)
    except Exception as exc:
        aside = move_aside(path)
        log.warning("detection snapshot %s cannot be read (%s); moved to %s, starting cold", path, exc, aside)
        return None
    return data


def _read_snapshot(path: Path) -> dict[str, Any]:
    with open(path, "rb") as fh:
        data = pickle.load(fh)
    if not isinstance(data, dict):
        raise TypeError(f"a {type(data).__name__}, not a snapshot")
    return data


def check_snapshot(path: Path) -> FormatCheck:
    """What this version does with the detection snapshot at ``path`` (``vigil upgrade-check``); reads it,
    moves nothing."""
    cold = "every entity starts cold: its alarm state and live threshold are learned again from the stream"
    try:
        data = _read_snapshot(path)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the same verdict
        return FormatCheck("detection snapshot", path, "unreadable", START_AFRESH, f"{exc}; {cold}")
    found = data.get("format")
    if found != SNAPSHOT_FORMAT:
        return FormatCheck("detection snapshot", path, str(found), START_AFRESH, cold)
    entities = len(data.get("entities", {}))
    return FormatCheck(
        "detection snapshot",
        path,
        str(found),
        READ,
        f"{entities} entities resume if it is fresher than the ingest window and their model's step is unchanged",
    )
