"""An anomaly raised while Alertmanager is down survives `kill -9` of `vigil serve`.

Real processes: Alertmanager and `vigil serve` with a model trained on real SMD rows. Alertmanager
is stopped, the rows leading to the test half's first alarm are remote_written to Vigil (its
sender keeps the alert for retry), `vigil serve` is killed with SIGKILL (no shutdown hook runs),
then both come back: the alert must reach Alertmanager with the anomaly's own ``startsAt``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import unavailable
from tests.integration.server.realprocs import (
    alertmanager,
    binary,
    free_port,
    vigil_serve,
    vigil_serve_process,
    wait_until,
)
from tests.unit.detection.realmodel import T0, frame, save_model, smd_dir, trained
from tests.unit.server.payloads import HEADERS, body
from vigil.alerting.client import parse_rfc3339

pytestmark = pytest.mark.integration
ENTITY = "db-restart"


def _first_alarm(n: int = 2000) -> int:
    scored = trained().score_frame(frame("test", 0, n))
    return int(np.flatnonzero(scored["alarm"].to_numpy())[0])


def _vigil_alerts(am: str) -> list[dict]:
    resp = requests.get(f"{am}/api/v2/alerts", params={"filter": 'alertname="VigilAnomaly"'}, timeout=2)
    return [a for a in resp.json() if a["labels"].get("entity") == ENTITY]


def test_an_alert_queued_during_an_outage_survives_kill_9(tmp_path: Path) -> None:
    if not (smd_dir() / "test").is_dir() or not binary("prometheus-alertmanager"):
        unavailable("real SMD data or prometheus-alertmanager missing")
    home = tmp_path / "home"
    save_model(home / "models", "smd-a")
    am_port, vigil_port = free_port(), free_port()
    am_url = f"http://127.0.0.1:{am_port}"
    first = _first_alarm()
    steps = range(max(0, first - 60), first + 3)
    with alertmanager(tmp_path, port=am_port):
        pass  # it ran once and is down now: nothing listens on its port
    with vigil_serve_process(home, am_url, port=vigil_port) as (vigil, proc):
        for k in steps:
            resp = requests.post(
                f"{vigil}/api/v1/write", data=body(ENTITY, range(k, k + 1)), headers=HEADERS, timeout=30
            )
            assert resp.status_code == 204, resp.text

        def deferred() -> bool:
            return 'vigil_alerts_total{outcome="deferred"}' in requests.get(f"{vigil}/metrics", timeout=5).text

        wait_until(deferred, 30, "the alert deferred while Alertmanager is down")
        assert (home / "state" / "alerts.json").is_file()
        os.killpg(proc.pid, signal.SIGKILL)  # gunicorn's master and worker: no shutdown hook runs
        proc.wait(10)
    with alertmanager(tmp_path, port=am_port), vigil_serve(home, am_url, port=vigil_port):
        wait_until(lambda: bool(_vigil_alerts(am_url)), 60, "the queued alert in Alertmanager", interval_s=0.5)
        alert = _vigil_alerts(am_url)[0]
    assert parse_rfc3339(alert["startsAt"]) == pytest.approx(T0 + first, abs=1.0)
