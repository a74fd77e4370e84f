"""Retrainer: sliding-window retraining that skips alarmed periods and never stalls scoring."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from tests.unit.registry.support import FAST_PARAMS, SMD_SLICE, smd_slice
from vigil.config import MaintenanceWindow
from vigil.detectors.alarms import dilate
from vigil.registry import ModelRegistry
from vigil.training import Retrainer, TrainConfig, TrainResult
from vigil.training.labels import LabelledPeriod

CONFIG = TrainConfig(n_folds=2, gap=30, model_params=dict(FAST_PARAMS))
ENTITY = "machine-1-3"
ROWS = 700


@pytest.fixture(scope="module")
def window() -> tuple[pd.DataFrame, np.ndarray]:
    """Real SMD test rows (event 392-416 labelled) on a 1-minute time index, as the archive returns them."""
    frame = smd_slice(ENTITY, "test", ROWS)
    frame = frame.set_axis(pd.date_range("2026-01-05", periods=len(frame), freq="60s", tz="UTC"))
    labels = np.loadtxt(SMD_SLICE / "test_label" / f"{ENTITY}.txt").astype(bool)[:ROWS]
    return frame, labels


def test_alarmed_rows_are_not_learned(registry: ModelRegistry, window: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, labels = window
    rt = Retrainer(
        registry, lambda _e, _w: frame, [ENTITY], config=CONFIG, alarm_mask=lambda _e, _f: labels, alarm_margin=10
    )
    result = rt.run_once(ENTITY)
    assert result is not None and result.version == "1" and result.promoted
    status = rt.status()["entities"][ENTITY]
    assert status["excluded_rows"] == labels.sum() + 20 and status["runs"] == 1 and not status["last_error"]
    training = registry.bundle_json(ENTITY, "1", "training.json")
    assert int(training["window"]["rows"]) == len(frame) - labels.sum() - 20

    # Without an explicit mask the champion's own alarms on the window are removed.
    rt_default = Retrainer(registry, lambda _e, _w: frame, [ENTITY], config=CONFIG, alarm_margin=5)
    _, champion = registry.load(ENTITY)
    expected = dilate(champion.score_frame(frame)["alarm"].to_numpy(dtype=bool), 5).sum()
    assert rt_default.run_once(ENTITY) is not None
    assert rt_default.status()["entities"][ENTITY]["excluded_rows"] == expected


def test_operators_verdicts_and_maintenance_correct_what_is_not_learned(
    registry: ModelRegistry, window: tuple[pd.DataFrame, np.ndarray]
) -> None:
    """The labelled event marked a false positive is learned from; a confirmed incident and a declared
    maintenance window are not, though the champion never alarmed on them; another entity's
    maintenance changes nothing."""
    frame, labels = window
    t = frame.index.as_unit("s").asi8.astype(float)
    verdicts = [LabelledPeriod(t[392], t[417], "false_positive"), LabelledPeriod(t[100], t[110], "confirmed")]
    maintenance = [
        MaintenanceWindow(start=frame.index[600], end=frame.index[650], entities=[ENTITY], reason="kernel update"),
        MaintenanceWindow(start=frame.index[0], end=frame.index[-1], entities=["another-host"]),
    ]
    rt = Retrainer(
        registry,
        lambda _e, _w: frame,
        [ENTITY],
        config=CONFIG,
        alarm_mask=lambda _e, _f: labels,
        alarm_margin=10,
        settings=registry.settings.model_copy(update={"maintenance": maintenance}),
        labels=lambda entity: verdicts if entity == ENTITY else [],
    )
    assert rt.run_once(ENTITY) is not None
    assert rt.status()["entities"][ENTITY]["excluded_rows"] == 10 + 50


def test_champion_alarming_on_most_of_the_window_masks_nothing(
    registry: ModelRegistry, window: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, _ = window
    everywhere = np.ones(len(frame), dtype=bool)  # what a champion that lost touch with the data reports
    rt = Retrainer(registry, lambda _e, _w: frame, [ENTITY], config=CONFIG, alarm_mask=lambda _e, _f: everywhere)
    assert rt.run_once(ENTITY) is not None
    assert rt.status()["entities"][ENTITY]["excluded_rows"] == 0


def test_too_short_window_is_skipped(registry: ModelRegistry, window: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, _ = window
    rt = Retrainer(registry, lambda _e, _w: frame.iloc[:100], [ENTITY], config=CONFIG, min_rows=200)
    assert rt.run_once(ENTITY) is None
    assert "usable rows" in rt.status()["entities"][ENTITY]["last_error"]
    assert registry.list_versions() == []


def test_a_round_that_cannot_list_entities_leaves_the_thread_for_the_next(
    registry: ModelRegistry, window: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, _ = window
    rounds = 0

    def entities() -> list[str]:
        nonlocal rounds
        rounds += 1
        if rounds == 1:  # what a compaction deleting a part mid-listing raised before readers re-listed
            raise FileNotFoundError("part-1-2.parquet")
        return [ENTITY]

    rt = Retrainer(registry, lambda _e, _w: frame.iloc[:100], entities, interval_s=0.1, config=CONFIG, min_rows=200)
    rt.start(run_now=True)
    try:
        deadline = time.monotonic() + 30
        while not rt.status()["entities"].get(ENTITY, {}).get("last_error") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rt.running and rounds >= 2
        assert "usable rows" in rt.status()["entities"][ENTITY]["last_error"]
    finally:
        rt.stop()


@pytest.mark.slow
def test_triggered_retrain_runs_in_background_while_scoring_continues(
    registry: ModelRegistry, window: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, labels = window
    done = threading.Event()
    results: list[TrainResult] = []

    def on_result(r: TrainResult) -> None:
        results.append(r)
        done.set()

    rt = Retrainer(
        registry,
        lambda _e, _w: frame,
        [ENTITY],
        interval_s=3600,
        config=CONFIG,
        alarm_mask=lambda _e, _f: labels,
        on_result=on_result,
    )
    assert rt.run_once(ENTITY) is not None
    done.clear()
    results.clear()
    _, champion = registry.load(ENTITY)
    stamps: list[float] = []
    stop = threading.Event()

    def score_loop() -> None:  # what the serving thread does: score the latest minute, again and again
        i = 0
        while not stop.is_set():
            champion.score_frame(frame.iloc[i % 600 : i % 600 + 60])
            stamps.append(time.monotonic())
            i += 1

    scorer = threading.Thread(target=score_loop)
    rt.start()
    scorer.start()
    try:
        rt.trigger(ENTITY, "drift")
        assert done.wait(300), rt.status()
    finally:
        stop.set()
        scorer.join()
        rt.stop()
    assert not rt.running
    assert results[0].version == "2" and rt.status()["entities"][ENTITY]["last_reason"] == "drift"
    gaps = np.diff(stamps)
    assert len(stamps) > 10
    # Scoring kept going during training; a stall would show as a gap of the training's length.
    assert gaps.max() < 5.0, f"longest pause between scores {gaps.max():.2f}s"
