"""Real Prometheus remote_writes real SMD rows to `vigil serve`; the alert lands in real Alertmanager.

Prometheus scrapes a replay exporter (one SMD test row per scrape, every 0.5 s) and `vigil serve`'s
own /metrics, and remote_writes everything to Vigil. The rows start 40 steps before the strongest
alarm that batch scoring finds in the test half, so the stream must raise that alarm and the alert
must reach Alertmanager; `vigil_anomaly_score` must be queryable in Prometheus.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import unavailable
from tests.integration.server.realprocs import (
    ReplayExporter,
    alertmanager,
    binary,
    prometheus,
    vigil_serve,
    wait_until,
)
from tests.unit.detection.realmodel import columns, frame, save_model, smd_dir, smd_rows, trained

STEP_S = 0.5

pytestmark = pytest.mark.integration


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    if not (smd_dir() / "test").is_dir():
        unavailable("real SMD data not found")
    if not binary("prometheus") or not binary("prometheus-alertmanager"):
        unavailable("prometheus / prometheus-alertmanager not installed")
    return tmp_path


def strongest_alarm(n: int = 3000) -> int:
    scored = trained(step_s=STEP_S).score_frame(frame("test", 0, n, STEP_S))
    alarms = np.flatnonzero(scored["alarm"].to_numpy())
    alarms = alarms[alarms >= 40]
    return int(alarms[np.argmax(scored["score"].to_numpy()[alarms])])


def test_prometheus_remote_write_to_alertmanager(workdir: Path) -> None:
    peak = strongest_alarm()
    rows = smd_rows("test")[peak - 40 : peak + 30].tolist()
    home = workdir / "home"
    save_model(home / "models", "smd-0.5s", step_s=STEP_S)
    with alertmanager(workdir) as am, ReplayExporter(columns(), rows) as exporter:
        with vigil_serve(home, am) as vigil:
            vigil_target = vigil.removeprefix("http://")
            scrape = {"smd": exporter.target, "vigil": vigil_target}
            with prometheus(workdir, scrape, f"{vigil}/api/v1/write", interval="500ms") as prom:

                def alert_fired() -> bool:
                    alerts = requests.get(
                        f"{am}/api/v2/alerts", params={"filter": 'alertname="VigilAnomaly"'}, timeout=2
                    )
                    return any(a["labels"].get("entity") == exporter.target for a in alerts.json())

                wait_until(alert_fired, 90, "VigilAnomaly alert in Alertmanager", interval_s=0.5)

                def score_queryable() -> bool:
                    resp = requests.get(f"{prom}/api/v1/query", params={"query": "vigil_anomaly_score"}, timeout=2)
                    return bool(resp.json()["data"]["result"])

                wait_until(score_queryable, 30, "vigil_anomaly_score in Prometheus", interval_s=0.5)
                assert requests.get(f"{vigil}/readyz", timeout=5).status_code == 200
                metrics = requests.get(f"{vigil}/metrics", timeout=5).text
                assert f'vigil_anomaly{{entity="{exporter.target}"}}' in metrics
                assert 'vigil_alerts_total{outcome="sent"}' in metrics
                # Prometheus' own series (its scrape of Vigil) arrive too: ignored, not an error.
                assert 'vigil_remote_write_requests_total{code="204"}' in metrics
                assert 'vigil_samples_total{outcome="ignored"}' in metrics
        # gunicorn's worker_exit hook snapshots the streaming state on SIGTERM, for a warm restart.
        assert (home / "state" / "detection.pkl").is_file()
