"""Scheduled and drift-triggered retraining on a sliding window, off the scoring path.

A :class:`Retrainer` runs in one background thread of the serving process (or the stack). Every
``interval_s`` — and at once when :meth:`Retrainer.trigger` is called, e.g. by a drift alert — it
loads each entity's last ``window_s`` of data, removes alarmed periods, trains a challenger with
:func:`~vigil.training.train.train_entity` and lets the selection rule decide on promotion.

Why this never blocks scoring: training only writes a *new* version and then moves an alias in one
database write; serving keeps scoring with the model it holds and swaps when its
:class:`~vigil.registry.ChampionWatcher` sees the alias move. The thread lowers its own CPU
priority (Linux nice, per thread) so on a busy host the scoring threads win the cores, and its work
counts as the host's niced CPU time, which ``cpu_busy`` leaves out.

Why alarmed periods are removed: a model refitted on a window that contains an incident learns the
incident as normal and stops alarming on the next one (river's ``ThresholdFilter`` protects its
detectors the same way). Rows where the current champion alarmed, widened by ``alarm_margin``
steps on each side, are dropped; the pipeline sees them as a gap. Operators' verdicts
(:mod:`vigil.training.labels`) correct that: a false positive's period is learned from, a confirmed
incident's never; nor is a declared maintenance window (``maintenance:`` in vigil.yml).

Incremental state: AnomalyPipeline's detectors (IsolationForest, LOF, OCSVM, PCA, autoencoder) have
no exact incremental update, so each run refits on the window. A model exposing
``partial_fit(frame)`` would be continued from the champion instead (see ``_warm_factory``).
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from vigil.config import Settings
from vigil.contracts import ScoringModel
from vigil.detectors.alarms import dilate
from vigil.errors import VigilError
from vigil.procfs import lower_priority
from vigil.registry import ModelRegistry, model_name
from vigil.timeindex import unix_seconds
from vigil.training.data import archive_entity_data, read_archive_window
from vigil.training.labels import LabelledPeriod, ServedLabels
from vigil.training.train import ModelFactory, TrainConfig, TrainResult, default_factory, train_entity

log = logging.getLogger(__name__)

WindowLoader = Callable[[str, float], pd.DataFrame]  # (entity, window seconds) -> raw signals, time-indexed
AlarmMask = Callable[[str, pd.DataFrame], np.ndarray]  # (entity, frame) -> bool per row
Labels = Callable[[str], Sequence[LabelledPeriod]]  # entity -> the periods operators judged


@dataclass
class EntityStatus:
    runs: int = 0
    last_started: float | None = None
    last_finished: float | None = None
    last_reason: str = ""
    last_version: str | None = None
    last_promoted: bool | None = None
    last_decision: str = ""
    last_error: str = ""
    excluded_rows: int = 0


@dataclass
class _State:
    entities: dict[str, EntityStatus] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)  # entity -> reason, for triggered runs
    running: str | None = None


class Retrainer:
    """Retrain each entity every ``interval_s`` on its last ``window_s`` of data, in a thread.

    Parameters
    ----------
    registry : where challengers are registered and champions promoted.
    load_window : ``(entity, window_s) -> DataFrame`` of raw signals (the archive, in the stack).
    entities : the entities to retrain, or a callable returning them (entities come and go).
    interval_s, window_s : schedule and sliding-window length, in seconds.
    config : training configuration; two folds by default, enough to compare without doubling cost.
    alarm_mask : ``(entity, frame) -> bool per row`` of alarmed steps; by default the current
        champion scores the window itself.
    alarm_margin : steps removed on each side of an alarmed step.
    min_rows : windows shorter than this (after removal) are skipped, not trained on.
    max_masked_fraction : when more of the window than this is alarmed, nothing is removed. An
        incident is a minority of a window; a champion alarming on most of it has lost touch with
        the data (a permanent shift, a miscalibrated model), which is exactly when it must be
        retrained, and removing the alarmed rows would leave nothing to learn from.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        load_window: WindowLoader,
        entities: Sequence[str] | Callable[[], Sequence[str]],
        *,
        interval_s: float = 300.0,
        window_s: float = 6 * 3600.0,
        config: TrainConfig | None = None,
        factory: ModelFactory = default_factory,
        alarm_mask: AlarmMask | None = None,
        alarm_margin: int = 30,
        min_rows: int = 200,
        max_masked_fraction: float = 0.5,
        on_result: Callable[[TrainResult], None] | None = None,
        nice: int = 10,
        settings: Settings | None = None,
        labels: Labels | None = None,
    ) -> None:
        self.registry = registry
        self.load_window = load_window
        self._entities = entities
        self.interval_s = interval_s
        self.window_s = window_s
        self.config = config or TrainConfig(n_folds=2)
        self.factory = factory
        self.alarm_mask = alarm_mask
        self.alarm_margin = alarm_margin
        self.min_rows = min_rows
        self.max_masked_fraction = max_masked_fraction
        self.on_result = on_result
        self.nice = nice
        self.settings = settings  # practical-significance overrides for the models it trains
        self.labels = labels
        self._state = _State()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_due = 0.0

    @classmethod
    def for_stack(cls, settings: Settings, registry: ModelRegistry | None = None, **kwargs: Any) -> Retrainer:
        """A retrainer over the local archive with the schedule and window from ``settings``.

        Entities are re-discovered in the archive on every round (hosts and services come and go);
        ``serving_model``, when set, narrows retraining to the model serving follows.
        """
        from vigil.ingest import signals

        def load(entity: str, window_s: float) -> pd.DataFrame:
            return read_archive_window(entity, window_s, settings)

        def entities() -> list[str]:
            found = signals.list_entities(settings=settings)
            if settings.serving_model:
                # The setting names a model; entity names may hold characters model names cannot.
                return [e for e in found if model_name(e) == model_name(settings.serving_model)]
            return found

        kwargs.setdefault("interval_s", settings.retrain_interval_s)
        kwargs.setdefault("window_s", settings.retrain_window_s)
        # The first fold trains on 60 % of the window, not half: alarmed rows are removed first, and
        # the pipeline needs 4 x its longest feature window of steps to fit at all.
        kwargs.setdefault("config", TrainConfig(n_folds=2, min_train_fraction=0.6, drift_window=settings.drift_window))
        kwargs.setdefault("settings", settings)
        kwargs.setdefault("labels", ServedLabels(settings))
        return cls(registry or ModelRegistry(settings), load, entities, **kwargs)

    # -- control ---------------------------------------------------------------------------
    def start(self, *, run_now: bool = False) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._next_due = time.monotonic() + (0.0 if run_now else self.interval_s)
        self._thread = threading.Thread(target=self._loop, name="vigil-retrainer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after the current training run (if any) finishes."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def trigger(self, entity: str, reason: str = "drift") -> None:
        """Ask for a retrain of ``entity`` as soon as the thread is free (drift alert, operator)."""
        with self._lock:
            self._state.pending.setdefault(entity, reason)
        self._wake.set()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "running": self._state.running,
                "pending": dict(self._state.pending),
                "interval_s": self.interval_s,
                "window_s": self.window_s,
                "next_due_in_s": max(0.0, self._next_due - time.monotonic()),
                "entities": {e: vars(s).copy() for e, s in self._state.entities.items()},
            }

    # -- work ------------------------------------------------------------------------------
    def entities(self) -> list[str]:
        return list(self._entities() if callable(self._entities) else self._entities)

    def run_once(self, entity: str, reason: str = "schedule") -> TrainResult | None:
        """Retrain one entity now, in the calling thread; None when the window is too short."""
        with self._lock:
            st = self._state.entities.setdefault(entity, EntityStatus())
            st.last_started, st.last_reason, st.last_error = time.time(), reason, ""
            self._state.running = entity
        try:
            frame = self.load_window(entity, self.window_s)
            champion = self._champion(entity)
            mask = self._alarmed(entity, frame, champion)
            if len(mask) and mask.mean() > self.max_masked_fraction:
                log.warning(
                    "%s: the champion alarms on %.0f%% of the window: a new regime, not an incident; learning from all",
                    entity,
                    100 * mask.mean(),
                )
                mask = np.zeros(len(frame), dtype=bool)
            mask = self._judged(entity, frame, mask)
            kept = frame.loc[~mask]
            with self._lock:
                st.excluded_rows = int(mask.sum())
            if len(kept) < self.min_rows:
                log.info(
                    "%s: %d usable rows in the window, fewer than %d: not retraining", entity, len(kept), self.min_rows
                )
                with self._lock:
                    st.last_error = f"only {len(kept)} usable rows (need {self.min_rows})"
                return None
            data = archive_entity_data(entity, kept, f"retrain:{reason}", self.settings)
            log.info("%s: retraining on %d rows (%s)", entity, len(kept), reason)
            result = train_entity(
                self.registry,
                data,
                replace(self.config),
                factory=_warm_factory(champion, self.factory),
            )
            with self._lock:
                st.runs += 1
                st.last_version, st.last_promoted, st.last_decision = result.version, result.promoted, result.decision
            if self.on_result is not None:
                self.on_result(result)
            return result
        except (VigilError, ValueError, RuntimeError, OSError) as exc:
            log.warning("%s: retraining failed: %s", entity, exc)
            with self._lock:
                st.last_error = f"{type(exc).__name__}: {exc}"
            return None
        finally:
            with self._lock:
                st.last_finished = time.time()
                self._state.running = None

    def _background(self, entity: str, reason: str) -> None:
        # numpy's BLAS pool was started by the main thread at full priority, and a niced thread's
        # linear algebra ran half in it (measured: 299 ticks of user time beside 255 of nice).
        # Single-threaded BLAS keeps the whole round in this thread, niced; PyTorch starts its own
        # pool from this thread, so that one inherits the nice value.
        with threadpool_limits(limits=1, user_api="blas"):
            self.run_once(entity, reason)

    def _loop(self) -> None:
        lower_priority(self.nice)
        while not self._stop.is_set():
            with self._lock:
                pending = dict(self._state.pending)
                self._state.pending.clear()
            for entity, reason in pending.items():
                if self._stop.is_set():
                    return
                self._background(entity, reason)
            if time.monotonic() >= self._next_due:
                self._next_due = time.monotonic() + self.interval_s
                try:
                    due = self.entities()
                except (VigilError, ValueError, OSError) as exc:
                    # The thread outlives a bad round: the next one lists the archive afresh.
                    log.warning("retraining round skipped: cannot list entities: %s", exc)
                    due = []
                for entity in due:
                    if self._stop.is_set():
                        return
                    self._background(entity, "schedule")
            self._wake.wait(timeout=max(0.05, self._next_due - time.monotonic()))
            self._wake.clear()

    def _champion(self, entity: str) -> ScoringModel | None:
        try:
            if self.registry.champion_version(model_name(entity)) is None:
                return None
            return self.registry.load(entity)[1]
        except VigilError as exc:
            log.warning("%s: cannot load the champion (%s); training without alarm masking", entity, exc)
            return None

    def _judged(self, entity: str, frame: pd.DataFrame, alarmed: np.ndarray) -> np.ndarray:
        """``alarmed`` corrected by what people said: rows of a false positive are learned from; rows
        of a confirmed incident or a declared maintenance window never are."""
        periods = [(w.start.timestamp(), w.end.timestamp(), "maintenance") for w in self.settings.maintenance
                   if w.applies_to(entity)] if self.settings else []  # fmt: skip
        if self.labels is not None:
            periods += [(p.start, p.end, p.verdict) for p in self.labels(entity)]
        if not periods or not len(frame):
            return alarmed
        index = frame.index
        ts = unix_seconds(index) if isinstance(index, pd.DatetimeIndex) else index.to_numpy(float)
        # The alarm mask is widened by alarm_margin steps; a false positive's period is widened alike.
        margin_s = self.alarm_margin * (float(np.median(np.diff(ts))) if len(ts) > 1 else 0.0)
        mask = alarmed.copy()
        for start, end, kind in periods:
            if kind == "false_positive":
                mask &= ~((ts >= start - margin_s) & (ts < end + margin_s))
        for start, end, kind in periods:
            if kind != "false_positive":
                mask |= (ts >= start) & (ts < end)
        return mask

    def _alarmed(self, entity: str, frame: pd.DataFrame, champion: ScoringModel | None) -> np.ndarray:
        if self.alarm_mask is not None:
            mask = np.asarray(self.alarm_mask(entity, frame), dtype=bool)
        elif champion is not None:
            try:
                mask = champion.score_frame(frame)["alarm"].to_numpy(dtype=bool)
            except (VigilError, KeyError, ValueError) as exc:
                log.warning("%s: champion cannot score the window (%s); no alarm masking", entity, exc)
                mask = np.zeros(len(frame), dtype=bool)
        else:
            mask = np.zeros(len(frame), dtype=bool)
        return dilate(mask, self.alarm_margin)


def _warm_factory(champion: ScoringModel | None, factory: ModelFactory) -> ModelFactory:
    """Continue the champion when it can learn incrementally, else build a fresh model."""
    if champion is None or not callable(getattr(champion, "partial_fit", None)):
        return factory

    class _Continued:
        def __init__(self) -> None:
            self.model = copy.deepcopy(champion)

        def fit(self, frame: pd.DataFrame) -> ScoringModel:
            return self.model.partial_fit(frame)  # type: ignore[attr-defined]

    return lambda _seed, _step, _params: _Continued()  # type: ignore[return-value]


class DriftTrigger:
    """Turns drift snapshots into retrain requests: once per drift episode, at most every ``cooldown_s``.

    Serving calls :meth:`observe` with each entity's :class:`~vigil.drift.DriftSnapshot` (for instance
    at scrape time); the first drifted snapshot of an episode asks the retrainer for a challenger.
    The cooldown stops a drift that the new model does not cure from retraining in a loop.
    """

    def __init__(self, retrainer: Retrainer, cooldown_s: float = 1800.0, clock: Callable[[], float] = time.monotonic):
        self.retrainer = retrainer
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._drifted: dict[str, bool] = {}
        self._last: dict[str, float] = {}

    def observe(self, entity: str, snapshot: Any) -> bool:
        """True when this snapshot triggered a retrain."""
        drifted = bool(getattr(snapshot, "drifted", False))
        was = self._drifted.get(entity, False)
        self._drifted[entity] = drifted
        if not drifted or was:
            return False
        now = self._clock()
        if now - self._last.get(entity, -math.inf) < self.cooldown_s:
            return False
        self._last[entity] = now
        reasons = ",".join(getattr(snapshot, "reasons", ()) or ())
        self.retrainer.trigger(entity, f"drift:{reasons}" if reasons else "drift")
        return True
