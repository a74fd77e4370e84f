"""`vigil validate --profile quick` end to end: real stack, real faults, real model, nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, free_port
from vigil.validation.campaign import FAULT_TYPES, lab_name
from vigil.validation.journal import CleanupJournal

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PORTS = ("prometheus", "node_exporter", "alertmanager", "mtail", "demo_app", "vigil", "collector",
         "victoria_metrics", "loadgen")  # fmt: skip


@pytest.fixture
def stack_env(vigil_home: Path) -> dict[str, str]:
    if os.geteuid() != 0:
        pytest.skip("the campaign needs root (namespaces, mounts, iptables)")
    env = dict(os.environ)
    for name in PORTS:
        env[f"VIGIL_PORTS__{name.upper()}"] = str(free_port())
    return env


def test_quick_campaign(stack_env: dict[str, str], vigil_home: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "out.json", tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "vigil.cli.main", "validate", "--profile", "quick", "--json", str(out),
         "--report", str(report), "--seed", "7"],
        cwd=REPO_ROOT, env=stack_env, capture_output=True, text=True, timeout=15 * 60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    for key in ("event_precision", "event_recall", "event_f1", "median_detect_s", "p90_detect_s",
                "false_alert_runs_per_hour", "faults"):  # fmt: skip
        assert key in res
    assert sorted(f["type"] for f in res["faults"]) == sorted(FAULT_TYPES)
    for f in res["faults"]:
        assert f["command"] and f["end"] > f["start"], f
        assert f["took_effect"], f"{f['type']} did not measurably take effect: {f['effect']}"
        assert f["detected"] == (f["detect_s"] is not None)
    assert res["meta"]["seed"] == 7 and res["meta"]["duration_s"] <= 15 * 60
    assert res["meta"]["alarm_samples"] > 0, "Prometheus recorded no vigil_anomaly samples"
    assert res["detected_events"] == sum(f["detected"] for f in res["faults"])
    assert (report / "report.md").exists() and (report / "report.html").exists()
    assert len(list(report.glob("fault-*.png"))) == len(FAULT_TYPES)
    # Nothing left: no open journal entry, no mount, no namespace, no stack process.
    assert CleanupJournal.for_home(vigil_home).open_entries(include_live=True) == []
    mounts = Path("/proc/self/mounts").read_text()
    assert str(vigil_home) not in mounts
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"vigil-{lab_name(vigil_home)}" not in netns
    status = subprocess.run(
        [sys.executable, "-m", "vigil.cli.main", "status", "--json"], cwd=REPO_ROOT, env=stack_env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert all(c["pid"] is None for c in json.loads(status.stdout)["components"])
