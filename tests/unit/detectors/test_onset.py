"""The first alert of a real CPU fault names the CPU (tests/data/onset: a real host model and the
real signals of a quick validation run in which the alert named disk I/O instead)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vigil.detection.assembler import ReadyStep
from vigil.detection.engine import DetectionEngine, LoadedModel
from vigil.detection.fast import compile_model
from vigil.detectors.pipeline import AnomalyPipeline
from vigil.events import Anomaly

ONSET = Path(__file__).resolve().parents[2] / "data" / "onset"
FAULT_START = 1796324673.2  # stress-ng started (tests/data/onset/README.md)


def test_the_first_alert_of_a_cpu_fault_leads_with_the_cpu_not_a_startup_disk_burst() -> None:
    model = AnomalyPipeline.load(ONSET / "host-model")
    frame = pd.read_parquet(ONSET / "host-cpu-fault.parquet")
    ts = frame.index.as_unit("ns").asi8 / 1e9
    clock = [0.0]
    events: list[Anomaly] = []
    engine = DetectionEngine(clock=lambda: clock[0], on_anomaly=lambda e, _t: events.append(e))
    scorer, info = compile_model(model)
    engine.set_model(LoadedModel("1", "host@1", model, scorer, 0.0, bool(info.get("fast"))))
    columns = [str(c) for c in frame.columns]
    iops = frame["disk_iops"].to_numpy(dtype=float)
    assert np.nanmax(iops) > 600  # the recorded burst is there
    for t, row in zip(ts, frame.to_numpy(dtype=float), strict=True):
        clock[0] = float(t)
        engine.score_steps([ReadyStep("host", float(t), dict(zip(columns, row.tolist(), strict=True)), float(t))])
    first = next(e for e in events if e.active and e.timestamp >= FAULT_START)
    metrics = [c.metric for c in first.contributions]
    assert metrics[0] == "cpu_busy", metrics
    assert "disk_iops" not in metrics, first.contributions  # 0 IOPS by then: it no longer deviates
