"""Several models served side by side: one :class:`DetectionEngine` per registered model.

``vigil train`` registers one model per entity (a host, the watched service), each trained on that
entity's own signals. The group fans every remote_write batch out to all engines; each engine's
assembler picks the series its model reads, and, when several models are served, its
``entity_filter`` keeps it to the entities its model was trained for; catalog entities' series are
routed to their own model's engine only (see :meth:`EngineGroup._route`). Readers (``/metrics``, the
API, ChatOps) see the union, so they need not know how many models there are.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator

from vigil.detection.assembler import IngestCounts
from vigil.detection.engine import DetectionEngine, EntityView, LoadedModel
from vigil.detection.stats import ServiceStats
from vigil.events import Anomaly
from vigil.ingest.catalog import entity_of
from vigil.ingest.remote_write import DecodedSeries
from vigil.registry.store import model_name


class EngineGroup:
    def __init__(self, *, step_s: float = 1.0, stats: ServiceStats | None = None) -> None:
        self.step_s = step_s  # the PromQL poller reads these as it would from one engine
        self.stats = stats or ServiceStats()
        self._engines: dict[str, DetectionEngine] = {}
        self._lock = threading.Lock()

    # -- membership ----------------------------------------------------------------------------
    def get(self, name: str) -> DetectionEngine | None:
        return self._engines.get(name)

    def add(self, name: str, engine: DetectionEngine) -> DetectionEngine:
        with self._lock:
            # Copy-on-write: request threads iterate the dict without taking the lock.
            self._engines = {**self._engines, name: engine}
        return engine

    def remove(self, name: str) -> DetectionEngine | None:
        with self._lock:
            engines = dict(self._engines)
            gone = engines.pop(name, None)
            self._engines = engines
        return gone

    def items(self) -> list[tuple[str, DetectionEngine]]:
        return list(self._engines.items())

    def __iter__(self) -> Iterator[DetectionEngine]:
        return iter(list(self._engines.values()))

    def __len__(self) -> int:
        return len(self._engines)

    def loaded_engines(self) -> list[tuple[str, DetectionEngine]]:
        return [(name, e) for name, e in self._engines.items() if e.loaded is not None]

    # -- the DetectionEngine surface that readers use ------------------------------------------
    @property
    def loaded(self) -> LoadedModel | None:
        """The first loaded model (what single-model callers such as ``/v1/predict`` default to)."""
        for _name, engine in sorted(self._engines.items()):
            if engine.loaded is not None:
                return engine.loaded
        return None

    def model(self, name: str) -> LoadedModel | None:
        engine = self._engines.get(name)
        return engine.loaded if engine is not None else None

    def ingest(self, series: Iterable[DecodedSeries], received_at: float | None = None) -> IngestCounts:
        batch = series if isinstance(series, list) else list(series)
        engines = self.loaded_engines()
        total = IngestCounts()
        if not engines:
            total.no_model = sum(len(s.values) for s in batch)
            self.stats.counters.inc("samples", "no_model", total.no_model)
            return total
        if any(engine.entity_filter is None for _n, engine in engines):  # one model scores every entity
            return self._broadcast(batch, engines, received_at)
        routed, unserved = self._route(batch, engines)
        for name, engine in engines:
            part = routed.get(name, []) if engine.catalog_kind else batch
            if part:
                for key, value in engine.ingest(part, received_at=received_at).as_dict().items():
                    if key != "ignored":
                        setattr(total, key, getattr(total, key) + value)
        if unserved:
            total.no_model += unserved
            self.stats.counters.inc("samples", "no_model", unserved)
        used = sum(v for k, v in total.as_dict().items() if k != "ignored")
        total.ignored = max(0, sum(len(s.values) for s in batch) - used)
        return total

    @staticmethod
    def _route(
        batch: list[DecodedSeries], engines: list[tuple[str, DetectionEngine]]
    ) -> tuple[dict[str, list[DecodedSeries]], int]:
        """Each catalog entity's series, under the name of the model trained for it; and how many samples
        belong to entities no model is trained for. Without this every engine would assemble every
        entity's signals only to drop them at scoring: a fleet of N hosts, each with its own model,
        would cost N x N."""
        routed: dict[str, list[DecodedSeries]] = {name: [] for name, _e in engines}
        unserved = 0
        for s in batch:
            entity = entity_of(s.name, s.labels)
            if entity is None:
                continue
            part = routed.get(model_name(entity.name))
            if part is None:
                unserved += len(s.values)
            else:
                part.append(s)
        return routed, unserved

    def _broadcast(
        self, batch: list[DecodedSeries], engines: list[tuple[str, DetectionEngine]], received_at: float | None
    ) -> IngestCounts:
        total = IngestCounts()
        # Every engine sees every sample. Engines reading the same signals (one model per host) see
        # the same samples, so their counts overlap: take the largest per signal set, then add the
        # sets up; a sample no set used was ignored.
        by_signals: dict[tuple[str, ...], dict[str, int]] = {}
        for _name, engine in engines:
            counts = engine.ingest(batch, received_at=received_at).as_dict()
            key = tuple(engine.loaded.signals) if engine.loaded is not None else ()
            seen = by_signals.setdefault(key, dict.fromkeys(counts, 0))
            for name, value in counts.items():
                seen[name] = max(seen[name], value)
        for counts in by_signals.values():
            for name, value in counts.items():
                if name != "ignored":
                    setattr(total, name, getattr(total, name) + value)
        used = sum(v for k, v in total.as_dict().items() if k != "ignored")
        total.ignored = max(0, sum(len(s.values) for s in batch) - used)
        return total

    def tick(self) -> int:
        scored = sum(engine.tick() for engine in self)
        # Silence is judged against the newest step scored for any entity of any model: a service
        # whose own model hears nothing while the host's keeps scoring has gone quiet.
        newest = max((engine.newest_update() for engine in self), default=float("-inf"))
        for engine in self:
            engine.check_silence(newest)
        return scored

    def views(self) -> list[EntityView]:
        return [view for engine in self for view in engine.views()]

    def anomalies(self) -> list[Anomaly]:
        return [event for engine in self for event in engine.anomalies()]

    def entity_count(self) -> int:
        return sum(engine.entity_count() for engine in self)

    @property
    def last_ingest_at(self) -> float:
        return max((e.last_ingest_at for e in self), default=-math.inf)

    @property
    def last_scored_at(self) -> float:
        return max((e.last_scored_at for e in self), default=-math.inf)
