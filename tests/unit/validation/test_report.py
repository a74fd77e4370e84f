"""The report files: every fault gets a plot, the tables carry the scored numbers, the JSON has its keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vigil.validation.report import Series, write_json, write_report
from vigil.validation.scoring import score_campaign


def _result() -> dict:
    faults = [
        {"type": "cpu_saturation", "start": 1100.0, "end": 1160.0, "command": "stress-ng --cpu 2 --timeout 120s",
         "effect": {"stress_cores": 1.9, "host_cpu_busy": 0.99}, "took_effect": True},
        {"type": "db_outage", "start": 1250.0, "end": 1300.0, "command": "python -m vigil.validation.dblock x.db",
         "effect": {"reads": 3, "read_errors": 3, "probe": {"error_rate": 1.0, "p50_ms": 2000.0}},
         "took_effect": True},
    ]  # fmt: skip
    ts = np.arange(1000.0, 1400.0)
    alarm = ((ts >= 1104) & (ts < 1130)).astype(float)
    res = score_campaign(faults, t0=1000, t1=1400, alarm_ts=ts, alarm_values=alarm, alert_times=[1110.0])
    res["meta"] = {"seed": 7, "profile": "quick", "purpose": "test", "notes": ["a note <b>"]}
    return res


def test_report_files_and_contents(tmp_path: Path) -> None:
    res = _result()
    ts = np.arange(1000.0, 1400.0)
    series = Series(
        metrics={"cpu_busy": (ts, np.where((ts >= 1100) & (ts < 1160), 1.0, 0.2)), "demo_error_rate": (ts, ts * 0)},
        score=(ts, np.where((ts >= 1104) & (ts < 1130), 0.9, 0.1)),
        threshold=0.5,
    )
    paths = write_report(res, series, tmp_path)
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["fault-01-cpu_saturation.png", "fault-02-db_outage.png"]
    assert all((tmp_path / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    md = paths["md"].read_text()
    assert "| cpu_saturation | 1 | 1 |" in md and "| db_outage | 1 | 0 |" in md
    assert "![cpu_saturation](fault-01-cpu_saturation.png)" in md
    assert "stress-ng --cpu 2" in md
    page = paths["html"].read_text()
    assert "<img src='fault-02-db_outage.png'" in page and "a note &lt;b&gt;" in page
    data = json.loads(paths["json"].read_text())
    assert data["event_recall"] == 0.5 and data["faults"][0]["detect_s"] == 4.0 and data["faults"][0]["alert_s"] == 10.0
    assert data["faults"][1]["detected"] is False and data["faults"][1]["command"].startswith("python -m")


def test_json_requires_the_documented_keys(tmp_path: Path) -> None:
    res = _result()
    for key in ("event_precision", "event_recall", "event_f1", "median_detect_s", "p90_detect_s",
                "false_alert_runs_per_hour", "faults"):  # fmt: skip
        assert key in res
    del res["p90_detect_s"]
    with pytest.raises(ValueError, match="p90_detect_s"):
        write_json(res, tmp_path / "x.json")
