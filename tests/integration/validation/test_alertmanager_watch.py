"""The campaign's Alertmanager poller against a real Alertmanager: first sight of each firing, re-fires too."""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, unavailable, wait_http
from vigil.validation.evidence import AlertmanagerWatch

pytestmark = pytest.mark.integration


def _post(url: str, alertname: str, starts: datetime, ends: datetime | None = None) -> None:
    alert = {"labels": {"alertname": alertname, "entity": "host-1"}, "startsAt": starts.isoformat()}
    if ends is not None:
        alert["endsAt"] = ends.isoformat()
    requests.post(f"{url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()


def _wait(pred: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.2)
    pytest.fail("condition not reached")


def test_watch_records_each_firing_of_an_anomaly_alert(tmp_path: Path) -> None:
    binary = shutil.which("prometheus-alertmanager")
    if binary is None:
        unavailable("prometheus-alertmanager is not installed (scripts/setup.sh)")
    cfg = tmp_path / "am.yml"
    cfg.write_text("route:\n  receiver: none\nreceivers:\n  - name: none\n")
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={cfg}", f"--storage.path={tmp_path}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready")
        with AlertmanagerWatch(url, interval_s=0.2) as watch:
            first = datetime.now(UTC)
            _post(url, "VigilAnomaly", first)
            _post(url, "TargetDown", first)  # not an anomaly alert: seen, but not a detection
            _wait(lambda: len(watch.first_seen) == 2)
            assert len(watch.anomaly_alert_times()) == 1
            time.sleep(0.5)
            _post(url, "VigilAnomaly", first, ends=datetime.now(UTC))  # resolved
            time.sleep(1.0)
            _post(url, "VigilAnomaly", datetime.now(UTC))  # fires again: same labels, new startsAt
            _wait(lambda: len(watch.anomaly_alert_times()) == 2)
        t1, t2 = watch.anomaly_alert_times()
        assert t2 - t1 >= 1.0
        assert watch.errors == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
