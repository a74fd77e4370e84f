"""One model per entity: the serving process follows every registered model's champion at once."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest

from tests.unit.registry.support import smd_slice
from tests.unit.registry.test_store import _log
from tests.unit.server.payloads import T0_MS
from vigil.detection.alerts import AlertDispatcher
from vigil.detection.service import DetectionService
from vigil.ingest.remote_write import DecodedSeries
from vigil.registry import ModelRegistry


def _steps(model: object, entities: list[str], n: int) -> list[list[DecodedSeries]]:
    rows = smd_slice("machine-1-3", "test", n).to_numpy(dtype=float)
    signals = list(model.metric_names_)  # type: ignore[attr-defined]
    batches = []
    for k in range(n):
        batch = []
        for entity in entities:
            for j, name in enumerate(signals):
                labels = {"__name__": name, "instance": entity}
                batch.append(DecodedSeries(name, labels, [T0_MS + 1000 * k], [float(rows[k, j])]))
        batches.append(batch)
    return batches


def _register_champions(registry: ModelRegistry, model: object, *entities: str) -> None:
    for entity in entities:
        _log(registry, model, entity=entity)
        registry.promote(entity, 1)


def test_each_entity_is_scored_by_its_own_champion(registry: ModelRegistry, fitted_model: object) -> None:
    _register_champions(registry, fitted_model, "db-1", "db-2")
    service = DetectionService(registry.settings, send_alerts=False)
    try:
        service.reload()
        assert set(service.models()["models"]) == {"db-1", "db-2"}
        for batch in _steps(fitted_model, ["db-1", "db-2", "db-3"], 40):
            service.engine.ingest(batch)
        scored = {v.entity for v in service.engine.views()}
        assert scored == {"db-1", "db-2"}  # db-3 has no model of its own: not scored by another's

        # Promoting a new version of one entity's model leaves the other's alone.
        _log(registry, fitted_model, entity="db-2")
        registry.promote("db-2", 2)
        service.reload()
        served = {name: m["version"] for name, m in service.models()["models"].items()}
        assert served == {"db-1": "1", "db-2": "2"}
        for batch in _steps(fitted_model, ["db-1", "db-2"], 45)[40:]:
            service.engine.ingest(batch)
        versions = {a.entity: a.model_version for a in service.engine.anomalies()}
        assert versions == {"db-1": "1", "db-2": "2"}
        assert all(np.isfinite(v.score) for v in service.engine.views())
    finally:
        service.close()


@pytest.mark.slow  # waits out SQLite's busy timeout
def test_a_registry_hiccup_keeps_every_engine_serving(registry: ModelRegistry, fitted_model: object) -> None:
    """The registry's database is locked by another writer for a moment: the engines serving now
    keep their models and streaming state instead of being dropped."""
    _register_champions(registry, fitted_model, "db-1", "db-2")
    service = DetectionService(registry.settings, send_alerts=False)
    try:
        service.reload()
        for batch in _steps(fitted_model, ["db-1", "db-2"], 30):
            service.engine.ingest(batch)
        db = registry.settings.home / "mlflow" / "mlflow.db"
        with sqlite3.connect(db, timeout=30, isolation_level=None) as lock:
            lock.execute("BEGIN EXCLUSIVE")  # a real lock, as a long migration or backup would hold
            try:
                service.reload()
            finally:
                lock.execute("ROLLBACK")
        assert service.stats.counters.get("model_reloads", "registry_unavailable") == 1
        assert {name for name, e in service.engines.items() if e.loaded} == {"db-1", "db-2"}
        assert {v.entity for v in service.engine.views()} == {"db-1", "db-2"}
    finally:
        service.close()


def test_a_model_in_shadow_is_scored_and_exported_but_never_pages(
    registry: ModelRegistry, fitted_model: object
) -> None:
    _register_champions(registry, fitted_model, "db-1", "db-2")
    registry.set_mode("db-1", "shadow")
    handed: list = []
    dispatcher = AlertDispatcher(lambda events: handed.extend(events) or 0)
    service = DetectionService(registry.settings, dispatcher=dispatcher)
    try:
        service.reload()
        assert {n: m["mode"] for n, m in service.models()["models"].items()} == {"db-1": "shadow", "db-2": "paging"}
        for batch in _steps(fitted_model, ["db-1", "db-2"], 400):
            service.engine.ingest(batch)
        time.sleep(0.5)  # the dispatcher thread hands events on
        assert "db-2" in {e.entity for e in handed}, "the paging model raised nothing to compare with"
        assert "db-1" not in {e.entity for e in handed}  # same rows, same alarms: only its own are held back
        assert {v.entity for v in service.engine.views()} == {"db-1", "db-2"}  # both scored and exported

        registry.set_mode("db-1", "paging")  # the operator lets it page: it does from the next poll on
        service.reload()
        assert service.models()["models"]["db-1"]["mode"] == "paging"
    finally:
        service.close()
