"""Streaming state: equal to batch scoring, survives restarts, swaps models under load without loss."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.unit.detection.realmodel import columns, frame, save_model, trained
from tests.unit.server.livehttp import serve
from tests.unit.server.payloads import HEADERS, T0_MS, body
from vigil.config import load_settings
from vigil.detection.engine import DetectionEngine, LoadedModel, load_snapshot, save_snapshot
from vigil.detection.fast import compile_model
from vigil.detection.service import DetectionService
from vigil.events import Anomaly
from vigil.ingest.remote_write import STALE_NAN, DecodedSeries
from vigil.server import create_app


def loaded(seed: int = 0, name: str = "m") -> LoadedModel:
    model = trained(seed=seed)
    scorer, info = compile_model(model)
    return LoadedModel(name, f"{name}@{seed}", model, scorer, time.time(), fast=info["fast"], info=info)


def series_for(entity: str, k: int, split: str = "test") -> list[DecodedSeries]:
    row = frame(split, k, k + 1).iloc[0]
    ts = T0_MS + k * 1000
    return [DecodedSeries(n, {"__name__": n, "instance": entity}, [ts], [float(row[n])]) for n in columns()]


def test_streaming_through_the_engine_equals_batch_scoring() -> None:
    engine = DetectionEngine()
    engine.set_model(loaded())
    n = 120
    scores = []
    for k in range(n):
        engine.ingest(series_for("e", k))
        scores.append(engine.views()[0].score)
    batch = trained().score_frame(frame("test", 0, n))
    np.testing.assert_allclose(scores, batch["score"].to_numpy(), atol=1e-9)


def test_snapshot_restart_continues_without_warm_up(tmp_path: Path) -> None:
    first = DetectionEngine()
    first.set_model(loaded())
    for k in range(60):
        first.ingest(series_for("e", k))
    save_snapshot(first, tmp_path / "snap.pkl")
    second = DetectionEngine()
    second.set_model(loaded())
    assert second.restore(load_snapshot(tmp_path / "snap.pkl") or {}) == 1
    second.tick()  # the first tick's idle sweep must not take the restored entity for an idle one
    assert second.entity_count() == 1
    for k in range(60, 80):
        first.ingest(series_for("e", k))
        second.ingest(series_for("e", k))
        assert second.views()[0].score == pytest.approx(first.views()[0].score, abs=1e-12)
    # Already-scored steps stay refused after the restart.
    assert second.ingest(series_for("e", 10)).out_of_order == 38


def test_snapshot_with_another_model_rebuilds_features_from_raw_steps(tmp_path: Path) -> None:
    a = DetectionEngine()
    a.set_model(loaded(0, "a"))
    for k in range(50):
        a.ingest(series_for("e", k))
    save_snapshot(a, tmp_path / "snap.pkl")
    b = DetectionEngine()
    b.set_model(loaded(1, "b"))
    b.restore(load_snapshot(tmp_path / "snap.pkl") or {})
    b.ingest(series_for("e", 50))
    ref = trained(seed=1).new_stream()
    for k in range(51):
        res = ref.update(T0_MS / 1000 + k, frame("test", k, k + 1).iloc[0].to_dict())
    assert res is not None and b.views()[0].score == pytest.approx(res.score, abs=1e-9)


def test_alarm_hands_anomalies_to_the_callback() -> None:
    events: list[Anomaly] = []
    engine = DetectionEngine(on_anomaly=lambda e, _t: events.append(e))
    engine.set_model(loaded())
    batch = trained().score_frame(frame("test", 0, 2000))
    first_alarm = int(np.flatnonzero(batch["alarm"].to_numpy())[0])
    for k in range(max(0, first_alarm - 60), first_alarm + 1):
        engine.ingest(series_for("e", k))
    # Replaying the real test half from 60 steps before its first alarm reproduces that alarm.
    assert events and events[-1].active and events[-1].entity == "e" and events[-1].model_version == "m"
    assert events[-1].contributions and 0.0 <= events[-1].score <= 1.0


def test_hot_swap_under_load_fails_no_request_and_skips_no_step(vigil_home: Path) -> None:
    settings = load_settings(home=vigil_home, api_token="t", serving={"model_poll_s": 0.1})
    save_model(settings.models_dir, "a", seed=0)
    save_model(settings.models_dir, "b", seed=1)
    (settings.models_dir / "champion").write_text("a")
    service = DetectionService(settings, send_alerts=False)
    n_steps = 150
    failures: list[str] = []
    with serve(create_app(settings, service=service)) as url:
        assert service.engine.loaded is not None and service.engine.loaded.version == "a"
        stop = threading.Event()

        def writer() -> None:
            for k in range(n_steps):
                resp = requests.post(
                    f"{url}/api/v1/write", data=body("e", range(k, k + 1)), headers=HEADERS, timeout=60
                )
                if resp.status_code != 204:
                    failures.append(f"write {k}: {resp.status_code} {resp.text}")
            stop.set()

        def predictor() -> None:
            names = None
            while not stop.is_set():
                if names is None:
                    names = requests.get(f"{url}/v1/models", timeout=30).json()["serving"]["features"]
                resp = requests.post(f"{url}/v1/predict", json={"instances": [[0.0] * len(names)]}, timeout=60)
                if resp.status_code != 200:
                    failures.append(f"predict: {resp.status_code} {resp.text}")

        threads = [threading.Thread(target=writer), threading.Thread(target=predictor)]
        for t in threads:
            t.start()
        swaps = 0
        while not stop.is_set():
            target = "b" if swaps % 2 == 0 else "a"
            resp = requests.post(
                f"{url}/v1/models/promote", json={"version": target}, headers={"Authorization": "Bearer t"}, timeout=120
            )
            if resp.status_code != 200:
                failures.append(f"promote: {resp.status_code}")
            swaps += 1
        for t in threads:
            t.join()
        # One more step after the last swap: the new model's stream must hold every earlier step.
        last = requests.post(f"{url}/api/v1/write", data=body("e", range(n_steps, n_steps + 1)), headers=HEADERS)
        assert last.status_code == 204
    service.close()
    assert not failures, failures[:5]
    assert swaps >= 2
    assert service.stats.counters.get("steps", "scored") == n_steps + 1
    final = service.engine.loaded
    assert final is not None
    ref = trained(seed=0 if final.version == "a" else 1).new_stream()
    for k in range(n_steps + 1):
        res = ref.update(T0_MS / 1000 + k, frame("test", k, k + 1).iloc[0].to_dict())
    assert res is not None and service.engine.views()[0].score == pytest.approx(res.score, abs=1e-9)


def test_an_entity_that_stops_reporting_while_others_go_on_is_alarmed_as_target_down() -> None:
    from vigil.detection.group import EngineGroup

    now = [T0_MS / 1000]  # the clock runs with the samples
    events: list[Anomaly] = []
    engine = DetectionEngine(clock=lambda: now[0], on_anomaly=lambda e, _t: events.append(e))
    engine.set_model(loaded())
    group = EngineGroup()
    group.add("m", engine)

    def step(k: int, *entities: str) -> None:
        now[0] += 1.0
        for entity in entities:
            group.ingest(series_for(entity, k))
        group.tick()

    def silence_events() -> list[Anomaly]:
        return [e for e in events if e.active and [c.metric for c in e.contributions] == ["up"]]

    for k in range(60):
        step(k, "a", "b")
    assert silence_events() == []  # (the real test rows raise ordinary alarms here too)
    for k in range(60, 75):  # b's exporter died; a goes on
        step(k, "a")
    assert [e.entity for e in silence_events()] == ["b"]
    view = {v.entity: v for v in group.views()}["b"]
    assert view.alarm and view.top_metric == "up"

    # Nothing arrives for anyone (Vigil's own feed stalled): no entity is called silent for that.
    quiet = DetectionEngine(clock=lambda: now[0])
    quiet.set_model(loaded())
    alone = EngineGroup()
    alone.add("m", quiet)
    for k in range(40):
        now[0] += 1.0
        alone.ingest(series_for("c", k))
    now[0] += 120.0
    alone.tick()
    assert all(v.top_metric != "up" for v in alone.views())

    for k in range(75, 80):  # b is back: its silence alarm ends once its own scores are normal again
        step(k, "a", "b")
    assert not {v.entity: v for v in group.views()}["b"].top_metric == "up"


def test_a_gap_longer_than_the_model_remembers_starts_the_features_afresh() -> None:
    """Replaying a year of missing steps would hold the engine's lock for hours; past the model's
    memory the stream starts afresh, exactly like a new one."""
    model = trained()
    stream = model.new_stream()
    rows = frame("test", 0, 31)
    for k in range(30):
        stream.update(T0_MS / 1000 + k, rows.iloc[k].to_dict())
    year_later = T0_MS / 1000 + 365 * 86_400
    res = stream.update(year_later, rows.iloc[30].to_dict())
    fresh = model.new_stream().update(year_later, rows.iloc[30].to_dict())
    assert res is not None and fresh is not None and res.score == pytest.approx(fresh.score, abs=1e-12)


def test_old_and_unreadable_snapshots_start_cold(tmp_path: Path) -> None:
    now = [T0_MS / 1000 + 60]
    first = DetectionEngine(clock=lambda: now[0])
    first.set_model(loaded())
    for k in range(40):
        first.ingest(series_for("e", k))
        first.ingest(series_for("f", k))
    snap = first.snapshot()
    now[0] += 4 * 3600  # four hours later: older than the three-hour window
    late = DetectionEngine(clock=lambda: now[0])
    late.set_model(loaded())
    assert late.restore(snap) == 0 and late.entity_count() == 0
    now[0] -= 4 * 3600
    snap["entities"]["e"]["stream"] = {"signals": {}}  # a state shape this code does not know
    other = DetectionEngine(clock=lambda: now[0])
    other.set_model(loaded())
    assert other.restore(snap) == 1 and other.entity_count() == 1  # f resumes, e starts cold


def test_idle_entities_are_forgotten_with_their_state() -> None:
    """A churned label value must not hold memory forever: its stream, ring and assembly go."""
    now = [T0_MS / 1000]
    engine = DetectionEngine(clock=lambda: now[0], silence_max_s=10, entity_idle_s=30)
    engine.set_model(loaded())
    for k in range(140):
        now[0] = T0_MS / 1000 + k + 0.5
        for entity in ("stays", "gone") if k < 20 else ("stays",):
            engine.ingest(series_for(entity, k))
        engine.tick()
    # "gone" may have been alarmed when it stopped: its alert resolves first, then it is forgotten.
    assert [v.entity for v in engine.views()] == ["stays"] and engine.entity_count() == 1
    assert engine.stats.counters.get("entities", "evicted") == 1


def test_an_entity_whose_series_went_stale_alarms_as_target_down_sooner() -> None:
    """When a target dies Prometheus writes stale markers for its series and then nothing: that step,
    every value missing, is evidence of a dead target, so its silence alarm needs 5 steps, not 10.
    A short outage whose missing steps arrive in one burst at recovery pages nothing afterwards."""
    from vigil.detection.group import EngineGroup

    now = [T0_MS / 1000]
    events: list[Anomaly] = []
    engine = DetectionEngine(clock=lambda: now[0], on_anomaly=lambda e, _t: events.append(e), stale_steps=5)
    engine.set_model(loaded())
    group = EngineGroup()
    group.add("m", engine)

    def down_alarms(entity: str) -> list[bool]:
        return [e.active for e in events if e.entity == entity and [c.metric for c in e.contributions] == ["up"]]

    def stale(entity: str, k: int) -> list[DecodedSeries]:
        ts = T0_MS + k * 1000
        return [DecodedSeries(n, {"__name__": n, "instance": entity}, [ts], [STALE_NAN]) for n in columns()]

    def step(k: int, batches: list[list[DecodedSeries]]) -> None:
        now[0] = T0_MS / 1000 + k + 0.5
        for batch in batches:
            group.ingest(batch)
        group.tick()

    for k in range(60):
        step(k, [series_for("up", k), series_for("dies", k), series_for("blips", k)])
    step(60, [series_for("up", 60), stale("dies", 60), series_for("blips", 60)])
    for k in range(61, 66):  # nothing more from "dies"; "blips" is away for a few steps
        step(k, [series_for("up", k)])
    assert down_alarms("dies") == []
    step(66, [series_for("up", 66)])
    assert down_alarms("dies") == [True]  # 6 s after its stale step, where plain silence takes 10
    # "blips" is back: its missing steps arrive in one burst with the first real one; no page after the fact.
    step(67, [series_for("up", 67), *[stale("blips", k) for k in range(61, 67)], series_for("blips", 67)])
    for k in range(68, 75):
        step(k, [series_for("up", k), series_for("blips", k)])
    assert down_alarms("blips") == []


def test_an_unreadable_snapshot_file_is_moved_aside_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = DetectionEngine(clock=lambda: T0_MS / 1000 + 60)
    first.set_model(loaded())
    for k in range(40):
        first.ingest(series_for("e", k))
    path = tmp_path / "detection.pkl"
    save_snapshot(first, path)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # a disk that filled mid-write
    with caplog.at_level(logging.WARNING, logger="vigil.detection.engine"):
        assert load_snapshot(path) is None
    assert not path.exists() and (tmp_path / "detection.pkl.corrupt").is_file()
    assert "starting cold" in caplog.text
    assert load_snapshot(path) is None  # nothing left to trip over on the next start
