"""The log-aggregation path: the demo app's real access log, parsed by the real mtail program."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry

from tests.conftest import unavailable
from vigil.config import DEPLOY_DIR
from vigil.demo.app import create_app

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _mtail() -> None:
    if shutil.which("mtail") is None:
        unavailable("mtail missing: run `make setup`")


def _mtail_one_shot(log) -> dict[str, float]:
    done = subprocess.run(
        ["mtail", f"--progs={DEPLOY_DIR / 'mtail'}", f"--logs={log}", "--one_shot", "--one_shot_format=prometheus",
         "--address=127.0.0.1", "--port=0", "--logtostderr"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    samples = {}
    for line in done.stdout.splitlines():
        m = re.match(r"^(\w+)(\{.*\})? (\S+)$", line)
        if m:
            labels = re.sub(r',?prog="[^"]*"', "", m.group(2) or "").replace("{,", "{")
            samples[m.group(1) + (labels if labels != "{}" else "")] = float(m.group(3))
    return samples


def test_mtail_counts_what_the_app_served(tmp_path):
    db, log = tmp_path / "orders.db", tmp_path / "access.log"
    registry = CollectorRegistry()
    client = create_app(db, log, "", registry).test_client()
    for _ in range(7):
        assert client.post("/api/orders", json={"sku": "SKU-003", "quantity": 1}).status_code == 201
    for _ in range(5):
        client.get("/api/orders?limit=5&q=%22quoted%22")  # quotes in the path must not break parsing
    client.get("/api/orders/424242")
    os.rename(db, tmp_path / "gone.db")
    for _ in range(3):
        assert client.get("/api/inventory").status_code == 503

    got = _mtail_one_shot(log)
    assert got['demo_log_requests_total{code="201",endpoint="orders_create",method="POST"}'] == 7
    assert got['demo_log_requests_total{code="200",endpoint="orders_list",method="GET"}'] == 5
    assert got['demo_log_requests_total{code="404",endpoint="orders_get",method="GET"}'] == 1
    assert got['demo_log_requests_total{code="503",endpoint="inventory_list",method="GET"}'] == 3
    assert got['demo_log_server_errors_total{endpoint="inventory_list"}'] == 3
    assert got['demo_log_errors_total{endpoint="inventory_list",error="OperationalError"}'] == 3
    assert got['demo_log_request_duration_seconds_count{endpoint="orders_create"}'] == 7
    # Every line was understood: the app's own counters and the log-derived ones agree.
    app_total = sum(
        s.value
        for metric in registry.collect()
        if metric.name == "demo_http_requests"
        for s in metric.samples
        if s.name == "demo_http_requests_total"
    )
    log_total = sum(v for k, v in got.items() if k.startswith("demo_log_requests_total"))
    assert log_total == app_total == 16
    assert got["demo_log_lines_total"] == 16 + 3  # plus one error line per failed request
