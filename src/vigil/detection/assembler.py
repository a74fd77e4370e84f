"""Turn remote_write samples into one complete step of signal values per entity.

Prometheus spreads one scrape over several requests (shards, 2,000-sample batches) and may deliver
them in any order, so a step is held open until either every signal the model needs has arrived,
a sample ``max_lag_steps`` newer arrives for the same entity, or it is ``grace_s`` old by the wall
clock. Steps are emitted strictly in time order per entity; a sample for a step that was already
emitted is *late* and counted as out-of-order (the stream cannot go back in time).

:class:`StepAssembler` serves models whose signals are plain metric names (a model trained on a
dataset's columns rather than on the signal catalog of ``vigil.ingest.catalog``, which
:class:`CatalogAssembler` serves): a signal is the metric name (``__name__``), the entity is the value
of ``entity_label``, and names ending in ``_total`` are turned into per-second rates with Prometheus'
counter-reset rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vigil.features.counters import CounterRate
from vigil.ingest.remote_write import DecodedSeries, is_stale_marker


@dataclass(frozen=True, slots=True)
class ReadyStep:
    entity: str
    timestamp: float  # unix seconds, the step's start
    values: dict[str, float]  # NaN for a signal that did not arrive
    received_at: float  # wall clock when the step was first touched (for latency)


@dataclass(slots=True)
class IngestCounts:
    accepted: int = 0
    ignored: int = 0  # series that feed no model signal (most of what Prometheus sends)
    out_of_order: int = 0  # older than the last step already scored for the entity
    duplicate: int = 0  # for exactly that step: what a sender's retry looks like, so not an error
    non_finite: int = 0  # NaN (not stale) and +-Inf: scored as missing
    stale: int = 0
    no_entity: int = 0  # series without the entity label
    entity_limit: int = 0
    too_old: int = 0  # older than the accepted window: nothing left to learn from them, and they would rewind a stream
    too_new: int = 0  # further ahead of the receiver's clock than a skewed sender can be: they would end the stream
    no_model: int = 0  # accepted and dropped: nothing is trained yet (a 5xx would only pile up retries)

    def merge(self, other: IngestCounts) -> None:
        for name in self.__slots__:  # type: ignore[attr-defined]
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class SampleWindow:
    """Sample timestamps a receiver takes, around its own clock.

    A sample stamped years ahead would otherwise move its entity's stream to that time: every real
    sample after it is out of order (a 400 that Prometheus never retries) and the steps in between
    are replayed one by one. One too old rewinds nothing (it is late) but still costs a buffer. Samples
    inside the window but ahead of the clock are held until the clock reaches their step.

    Three hours back: Prometheus keeps at least two hours of write-ahead log and re-sends it to a
    receiver that was down, so that backlog is still taken (each entity bridges its gap cheaply).
    """

    max_age_s: float = 3 * 3600.0
    max_ahead_s: float = 300.0

    def bounds_ms(self, now: float) -> tuple[int, int]:
        return int((now - self.max_age_s) * 1000), int((now + self.max_ahead_s) * 1000)

    def take(self, ts_ms: int, lo_ms: int, hi_ms: int, counts: IngestCounts) -> bool:
        if ts_ms < lo_ms:
            counts.too_old += 1
            return False
        if ts_ms > hi_ms:
            counts.too_new += 1
            return False
        return True


@dataclass(slots=True)
class _EntityBuffer:
    pending: dict[int, dict[str, float]] = field(default_factory=dict)
    first_seen: dict[int, float] = field(default_factory=dict)
    last_emitted: int | None = None
    counters: dict[str, CounterRate] = field(default_factory=dict)
    last_seen: float = -math.inf  # timestamp of its newest sample


class StepAssembler:
    def __init__(
        self,
        signals: Sequence[str],
        *,
        entity_label: str = "instance",
        step_s: float = 1.0,
        max_lag_steps: int = 5,
        grace_s: float = 2.0,
        max_entities: int = 2_000,
        counter_suffixes: tuple[str, ...] = ("_total",),
        window: SampleWindow = SampleWindow(),
    ) -> None:
        self.signals = list(signals)
        self._signal_set = frozenset(self.signals)
        self.entity_label = entity_label
        self.step_ms = max(1, int(round(step_s * 1000)))
        self.max_lag_steps = max_lag_steps
        self.grace_s = grace_s
        self.max_entities = max_entities
        self.counter_suffixes = counter_suffixes
        self.window = window
        self._entities: dict[str, _EntityBuffer] = {}

    @property
    def step_s(self) -> float:
        return self.step_ms / 1000.0

    def last_emitted(self) -> dict[str, float]:
        return {
            e: b.last_emitted * self.step_ms / 1000.0 for e, b in self._entities.items() if b.last_emitted is not None
        }

    def restore_positions(self, positions: dict[str, float]) -> None:
        """After a restart, refuse samples older than what the snapshot had already scored."""
        for entity, ts in positions.items():
            buf = self._buffer(entity)
            buf.last_emitted = int(round(ts * 1000)) // self.step_ms
            buf.last_seen = ts  # idle from the snapshot's time on, not forgotten at the first tick

    def _buffer(self, entity: str) -> _EntityBuffer:
        buf = self._entities.get(entity)
        if buf is None:
            buf = self._entities[entity] = _EntityBuffer()
        return buf

    def add(self, series: Iterable[DecodedSeries], now: float, counts: IngestCounts) -> list[ReadyStep]:
        touched: set[str] = set()
        lo_ms, hi_ms = self.window.bounds_ms(now)
        for s in series:
            if s.name not in self._signal_set:
                counts.ignored += len(s.values)
                continue
            entity = s.labels.get(self.entity_label)
            if not entity:
                counts.no_entity += len(s.values)
                continue
            buf = self._entities.get(entity)
            if buf is None:
                if len(self._entities) >= self.max_entities:
                    counts.entity_limit += len(s.values)
                    continue
                buf = self._buffer(entity)
            is_counter = s.name.endswith(self.counter_suffixes)
            for ts_ms, value in zip(s.timestamps_ms, s.values, strict=True):
                if not self.window.take(ts_ms, lo_ms, hi_ms, counts):
                    continue
                step = ts_ms // self.step_ms
                if buf.last_emitted is not None and step <= buf.last_emitted:
                    if step == buf.last_emitted:
                        counts.duplicate += 1
                    else:
                        counts.out_of_order += 1
                    continue
                if value != value:
                    if is_stale_marker(value):
                        counts.stale += 1
                    else:
                        counts.non_finite += 1
                    value = math.nan
                elif math.isinf(value):
                    counts.non_finite += 1
                    value = math.nan
                if is_counter:
                    rate = buf.counters.get(s.name)
                    if rate is None:
                        rate = buf.counters[s.name] = CounterRate()
                    value = rate.update(ts_ms / 1000.0, value)
                row = buf.pending.get(step)
                if row is None:
                    row = buf.pending[step] = {}
                    buf.first_seen[step] = now
                row[s.name] = value
                buf.last_seen = max(buf.last_seen, ts_ms / 1000)
                counts.accepted += 1
            touched.add(entity)
        ready: list[ReadyStep] = []
        for entity in touched:
            self._drain(entity, self._entities[entity], now, ready)
        return ready

    def forget_idle(self, before: float, now: float) -> list[str]:
        """Drop the state of entities without a sample stamped since ``before``; returns their names."""
        gone = [e for e, b in self._entities.items() if b.last_seen < before and not b.pending]
        for entity in gone:
            del self._entities[entity]
        return gone

    def flush_due(self, now: float) -> list[ReadyStep]:
        """Emit steps that waited ``grace_s``: a signal that never comes must not stall the entity."""
        ready: list[ReadyStep] = []
        for entity, buf in self._entities.items():
            if buf.pending:
                self._drain(entity, buf, now, ready)
        return ready

    def _drain(self, entity: str, buf: _EntityBuffer, now: float, out: list[ReadyStep]) -> None:
        if not buf.pending:
            return
        n_signals = len(self.signals)
        newest = max(buf.pending)
        horizon = int(now * 1000) // self.step_ms + 1
        for step in sorted(buf.pending):
            if step > horizon:
                break  # stamped ahead of our clock: it waits for its time
            row = buf.pending[step]
            complete = len(row) >= n_signals
            overtaken = min(newest, horizon) - step >= self.max_lag_steps
            expired = now - buf.first_seen[step] >= self.grace_s
            if not (complete or overtaken or expired):
                break  # later steps wait too: the stream is strictly ordered
            del buf.pending[step]
            received = buf.first_seen.pop(step)
            values = {name: row.get(name, math.nan) for name in self.signals}
            buf.last_emitted = step
            out.append(ReadyStep(entity, step * self.step_ms / 1000.0, values, received))

    def entities(self) -> list[str]:
        return list(self._entities)


class CatalogAssembler:
    """Adapter over ``vigil.ingest.stream.SignalAssembler`` for models trained on catalog signals.

    The catalog derives each signal (``load1``, ``cpu_busy``, ...) from labelled raw series exactly
    as the training path did, which is what prevents train/serve skew; this class only gives it
    the interface of :class:`StepAssembler` (counts, wall-clock flush, restart positions).
    """

    def __init__(
        self,
        signals: Sequence[str],
        kind: str,
        *,
        step_s: float,
        grace_s: float,
        window: SampleWindow = SampleWindow(),
        max_entities: int = 2_000,
        max_series_per_entity: int = 2_000,
    ) -> None:
        from vigil.ingest.stream import SignalAssembler

        self.signals = list(signals)
        self.kind = kind
        self.step_ms = max(1, int(round(step_s * 1000)))
        self.grace_s = grace_s
        self.window = window
        # Early completion: a step is scored once every series of its entity has reported for it,
        # not a scrape interval later when the next step's first sample arrives.
        self._inner = SignalAssembler(
            step_s=step_s,
            early=True,
            max_entities=max_entities,
            max_series_per_entity=max_series_per_entity,
            kinds=[kind],
        )
        self._positions: dict[str, float] = {}

    @property
    def step_s(self) -> float:
        return self.step_ms / 1000.0

    def _convert(self, steps: Iterable[Any], received: float) -> list[ReadyStep]:
        out = []
        for step in steps:
            if step.kind != self.kind or step.timestamp <= self._positions.get(step.entity, -math.inf):
                continue
            self._positions[step.entity] = step.timestamp
            values = {name: float(step.values.get(name, math.nan)) for name in self.signals}
            out.append(ReadyStep(step.entity, step.timestamp, values, received))
        return out

    def add(self, series: Iterable[DecodedSeries], now: float, counts: IngestCounts) -> list[ReadyStep]:
        inner = self._inner
        ignored, late, limited = inner.ignored_samples, inner.late_samples, inner.limited_samples
        steps: list[Any] = []
        n = 0
        lo_ms, hi_ms = self.window.bounds_ms(now)
        horizon_ms = self._horizon_ms(now)
        received_ms = int(now * 1000)
        for s in series:
            for ts_ms, value in zip(s.timestamps_ms, s.values, strict=True):
                if not self.window.take(ts_ms, lo_ms, hi_ms, counts):
                    continue
                n += 1
                if value != value:
                    if is_stale_marker(value):
                        counts.stale += 1
                    else:
                        counts.non_finite += 1
                elif math.isinf(value):
                    counts.non_finite += 1
                    value = math.nan
                steps += inner.add(s.labels, ts_ms, value, horizon_ms=horizon_ms, received_ms=received_ms)
        counts.ignored += inner.ignored_samples - ignored
        counts.out_of_order += inner.late_samples - late
        counts.entity_limit += inner.limited_samples - limited
        counts.accepted += n - (inner.ignored_samples - ignored) - (inner.late_samples - late)
        counts.accepted -= inner.limited_samples - limited
        return self._convert(steps, now)

    def flush_due(self, now: float) -> list[ReadyStep]:
        # The catalog completes a step when all its series reported or a newer one starts. When an
        # entity's samples stop (a crashed target: stale markers, then nothing), the wall clock
        # completes its last step, so the step with every input gone reaches the engine while the
        # others go on reporting.
        received_before_ms = int((now - self.grace_s) * 1000)
        return self._convert(
            self._inner.flush(horizon_ms=self._horizon_ms(now), received_before_ms=received_before_ms), now
        )

    def _horizon_ms(self, now: float) -> int:
        """The newest step the receiver's clock has reached (one step of skew allowed)."""
        return int(now * 1000) + self.step_ms

    def forget_idle(self, before: float, now: float) -> list[str]:
        """Drop the state of entities without a sample stamped since ``before``; returns their names."""
        gone = [name for _kind, name in self._inner.forget_idle(int(before * 1000), self._horizon_ms(now))]
        for name in gone:
            self._positions.pop(name, None)
        return gone

    def last_emitted(self) -> dict[str, float]:
        return dict(self._positions)

    def restore_positions(self, positions: dict[str, float]) -> None:
        self._positions.update(positions)

    def entities(self) -> list[str]:
        return list(self._positions)


def catalog_kind(signals: Sequence[str]) -> str | None:
    """The entity kind whose catalog holds every one of ``signals`` (None: raw metric names)."""
    from vigil.ingest.catalog import SIGNALS

    wanted = set(signals)
    for kind, catalog in SIGNALS.items():
        if wanted and wanted <= {s.name for s in catalog}:
            return kind
    return None
