"""The streaming form of the signal catalogue: raw remote_write samples in, one row of signals per
entity and completed step out, computed as the batch loader computes them (:mod:`vigil.ingest.signals`)."""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from vigil.features.counters import CounterRate, is_stale_marker
from vigil.ingest.catalog import LOOKBACK_S, SIGNALS, Entity, compute_signals, entity_inputs, entity_of
from vigil.ingest.expr import Columns, Input


@dataclass
class _SeriesBuf:
    name: str
    labels: dict[str, str]
    samples: list[tuple[int, float]] = field(default_factory=list)  # (ts_ms, value), sorted
    counter: CounterRate | None = None
    inputs: tuple[Input, ...] = ()  # the catalogue inputs it feeds, matched once instead of at every step


@dataclass
class _EntityState:
    entity: Entity
    series: dict[tuple[tuple[str, str], ...], _SeriesBuf] = field(default_factory=dict)
    next_step_ms: int | None = None  # the oldest step not yet emitted
    newest_ms: int = -(2**62)
    received_ms: int = -(2**62)  # receiver's clock at its newest sample (when the caller says)
    ahead: list[int] = field(default_factory=list)  # heap of the distinct steps stamped past the receiver's clock
    ahead_set: set[int] = field(default_factory=set)
    # Series that have reported for the oldest pending step (a sample at or past it): when every
    # known series has, that step can go out without waiting for the next one.
    reported: set[tuple[tuple[str, str], ...]] = field(default_factory=set)
    emitted: bool = False  # a first step went out by the lag rule, so the entity's series are known


@dataclass(frozen=True)
class SignalStep:
    entity: str
    kind: str
    timestamp: float  # unix seconds of the step
    values: dict[str, float]


class SignalAssembler:
    """Raw samples in, one dict of signal values per entity and completed step out.

    A step ``t`` holds, per series, the last sample at or before ``t`` within the lookback (as a
    Prometheus range query would); it is complete once a sample ``lag_steps`` steps newer has
    arrived for the same entity, or on :meth:`flush`. With ``early``, it is also complete as soon
    as every series the entity has reported for it: a sender delivers a series in time order, so no
    sample that could change the step can still come, and the step goes out a scrape interval sooner
    (the lag rule still ends a step a series stopped reporting for). Counters use one
    :class:`~vigil.features.counters.CounterRate` per series.

    >>> asm = SignalAssembler(step_s=1.0)
    >>> asm.add({"__name__": "node_load1", "instance": "h"}, 1_000, 0.5)
    []
    >>> [s.values["load1"] for s in asm.add({"__name__": "node_load1", "instance": "h"}, 3_000, 0.7)]
    [0.5, 0.5]
    """

    def __init__(
        self,
        step_s: float = 1.0,
        *,
        lag_steps: int = 1,
        early: bool = False,
        lookback_s: float = LOOKBACK_S,
        max_gap_steps: int = 600,
        max_entities: int = 2_000,
        max_series_per_entity: int = 2_000,
        kinds: Sequence[str] | None = None,
    ) -> None:
        self.step_ms = max(1, round(step_s * 1000))
        self.lag_steps = lag_steps
        self.early = early
        self.lookback_ms = round(lookback_s * 1000)
        # Past this many missing steps an entity resumes at its newest step instead of emitting every
        # one in between: after an outage, or a sample stamped far ahead, the gap costs nothing.
        self.max_gap_ms = max_gap_steps * self.step_ms
        self._entities: dict[tuple[str, str], _EntityState] = {}
        # Only these kinds of entity are assembled (a host model's assembler holds no services).
        self._inputs = {kind: entity_inputs(kind) for kind in (kinds or SIGNALS)}
        self.max_entities = max_entities
        self.max_series_per_entity = max_series_per_entity
        self.late_samples = 0
        self.ignored_samples = 0
        self.limited_samples = 0  # refused by the entity or series cap
        self.skipped_steps = 0

    def add(
        self,
        labels: Mapping[str, str],
        ts_ms: int,
        value: float,
        *,
        horizon_ms: int | None = None,
        received_ms: int | None = None,
    ) -> list[SignalStep]:
        """Feed one raw sample; returns the steps it completed (possibly none).

        A sample whose step lies past ``horizon_ms`` (the receiver's clock) is kept for its step but
        moves the entity no further than the clock: a sender whose clock runs ahead is scored as the
        clock reaches its samples, and one hostile sample stamped hours ahead ends nothing.
        ``received_ms`` (the receiver's clock now) lets :meth:`flush` find entities gone quiet.
        """
        name = labels.get("__name__", "")
        ent = entity_of(name, labels)
        if (
            ent is None
            or ent.kind not in self._inputs
            or not any(i.matches(name, labels) for i in self._inputs[ent.kind])
        ):
            self.ignored_samples += 1
            return []
        state = self._entities.get((ent.kind, ent.name))
        if state is None:
            if len(self._entities) >= self.max_entities:
                self.limited_samples += 1
                return []
            state = self._entities[(ent.kind, ent.name)] = _EntityState(ent)
        key = tuple(sorted(labels.items()))
        buf = state.series.get(key)
        if buf is None:
            if len(state.series) >= self.max_series_per_entity:
                self.limited_samples += 1
                return []
            matched = tuple(i for i in self._inputs[ent.kind] if i.matches(name, labels))
            buf = state.series[key] = _SeriesBuf(
                name,
                dict(labels),
                inputs=matched,
                counter=CounterRate(LOOKBACK_S) if any(i.counter for i in matched) else None,
            )
        step = self._grid_step(int(ts_ms))
        if state.next_step_ms is not None and step < state.next_step_ms and buf.samples and ts_ms <= buf.samples[-1][0]:
            # Out of order for its series, for a step already out: no step left can use it. A sample
            # for a step already out that is its series' newest (a scrape split over requests, a
            # sender catching up with two samples in one step) is in order: the next steps carry it.
            self.late_samples += 1
        bisect.insort(buf.samples, (int(ts_ms), float(value)))
        if received_ms is not None:
            state.received_ms = received_ms
        if horizon_ms is not None and step > horizon_ms:
            if step not in state.ahead_set:
                state.ahead_set.add(step)
                heapq.heappush(state.ahead, step)
        else:
            self._advance(state, step)
        if horizon_ms is not None:
            self._release(state, horizon_ms)
        steps = self._emit(state, state.newest_ms - self.lag_steps * self.step_ms)
        if self.early and state.emitted and state.next_step_ms is not None:
            if state.next_step_ms <= step <= state.newest_ms:
                state.reported.add(key)
            while state.next_step_ms <= state.newest_ms and len(state.reported) >= len(state.series):
                steps += self._emit(state, state.next_step_ms)
        return steps

    @staticmethod
    def _advance(state: _EntityState, step: int) -> None:
        if state.next_step_ms is None:
            state.next_step_ms = step
        state.newest_ms = max(state.newest_ms, step)

    def _release(self, state: _EntityState, horizon_ms: int) -> None:
        while state.ahead and state.ahead[0] <= horizon_ms:
            step = heapq.heappop(state.ahead)
            state.ahead_set.discard(step)
            self._advance(state, step)

    def add_many(self, samples: Iterable[tuple[Mapping[str, str], int, float]]) -> list[SignalStep]:
        out: list[SignalStep] = []
        for labels, ts_ms, value in samples:
            out.extend(self.add(labels, ts_ms, value))
        return out

    def flush(self, horizon_ms: int | None = None, received_before_ms: int | None = None) -> list[SignalStep]:
        """Emit every pending step up to the newest sample of each entity (no further than ``horizon_ms``);
        with ``received_before_ms``, only of the entities whose newest sample arrived before it."""
        out: list[SignalStep] = []
        for state in self._entities.values():
            if received_before_ms is not None and state.received_ms >= received_before_ms:
                continue
            if horizon_ms is not None:
                self._release(state, horizon_ms)
            out.extend(self._emit(state, state.newest_ms))
        return out

    def forget_idle(self, before_ms: int, horizon_ms: int | None = None) -> list[tuple[str, str]]:
        """Drop every entity whose newest sample is older than ``before_ms`` (samples held for a step
        past ``horizon_ms`` keep it); returns their (kind, name)."""
        if horizon_ms is not None:
            for state in self._entities.values():
                self._release(state, horizon_ms)
        gone = [key for key, state in self._entities.items() if state.newest_ms < before_ms and not state.ahead]
        for key in gone:
            del self._entities[key]
        return gone

    def _emit(self, state: _EntityState, until_ms: int) -> list[SignalStep]:
        out = []
        inputs = self._inputs[state.entity.kind]
        if state.next_step_ms is not None and until_ms - state.next_step_ms > self.max_gap_ms:
            self.skipped_steps += (until_ms - state.next_step_ms) // self.step_ms
            state.next_step_ms = until_ms
        dead: set[tuple[tuple[str, str], ...]] = set()
        while state.next_step_ms is not None and state.next_step_ms <= until_ms:
            t = state.next_step_ms
            per_input: dict[Input, tuple[list[dict[str, str]], list[float]]] = {i: ([], []) for i in inputs}
            for key, buf in state.series.items():
                value = self._value_at(buf, t)
                if not buf.samples or t - buf.samples[-1][0] >= self.lookback_ms:
                    dead.add(key)  # gone for a whole lookback (a removed interface, a replaced disk)
                if buf.counter is not None:
                    value = buf.counter.update(t / 1000, value)
                for inp in buf.inputs:
                    per_input[inp][0].append(buf.labels)
                    per_input[inp][1].append(value)
            cols = {
                i: Columns(lbls, np.array(vals, dtype=np.float64).reshape(1, len(vals)))
                for i, (lbls, vals) in per_input.items()
            }
            values = {k: float(v[0]) for k, v in compute_signals(state.entity.kind, cols, 1).items()}
            out.append(SignalStep(state.entity.name, state.entity.kind, t / 1000, values))
            state.next_step_ms = t + self.step_ms
            state.emitted = True
        if out and self.early:
            state.reported = {key for key, buf in state.series.items() if self._reported(buf, state)}
        # A dead series frees its place under the cap; were it to come back, it starts afresh.
        for key in dead:
            buf = state.series[key]
            if not buf.samples or state.newest_ms - buf.samples[-1][0] >= self.lookback_ms:
                del state.series[key]
        return out

    def _grid_step(self, ts_ms: int) -> int:
        """The grid point at which a sample stamped ``ts_ms`` is current (the first at or after it)."""
        return -(-ts_ms // self.step_ms) * self.step_ms

    def _reported(self, buf: _SeriesBuf, state: _EntityState) -> bool:
        """Whether ``buf``'s newest sample is current at the entity's oldest pending step or later,
        and not stamped past what the entity has reached (a sample ahead of the clock proves nothing)."""
        if not buf.samples or state.next_step_ms is None:
            return False
        return state.next_step_ms <= self._grid_step(buf.samples[-1][0]) <= state.newest_ms

    def _value_at(self, buf: _SeriesBuf, t: int) -> float:
        # The newest sample at or before t; older ones can go, the stream never looks back.
        i = bisect.bisect_right(buf.samples, (t, math.inf)) - 1
        if i < 0:
            return math.nan
        ts, value = buf.samples[i]
        del buf.samples[:i]
        # Prometheus' lookback window is left-open: (t - lookback, t].
        if is_stale_marker(value) or t - ts >= self.lookback_ms:
            return math.nan
        return value
