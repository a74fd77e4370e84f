"""The whole local stack end to end: replayed load reaches the app, its logs reach mtail, both reach
Prometheus, and a real database outage shows up on both paths and in the load generator's view."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.stack.stackcli import StackCLI, stack_fixture

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(vigil_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackCLI]:
    yield from stack_fixture(vigil_home, monkeypatch)


def _query(stack: StackCLI, promql: str) -> float:
    data = requests.get(stack.url("prometheus") + "/api/v1/query", params={"query": promql}, timeout=5).json()
    result = data["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def _eventually(stack: StackCLI, promql: str, timeout_s: float = 45.0) -> float:
    deadline = time.monotonic() + timeout_s
    value = 0.0
    while time.monotonic() < deadline:
        value = _query(stack, promql)
        if value > 0:
            return value
        time.sleep(1)
    raise AssertionError(f"{promql} stayed at {value} for {timeout_s}s")


def test_load_flows_through_app_logs_and_prometheus_and_a_db_outage_is_visible(stack):
    done = stack.run("up", "--timeout", "60")
    assert done.returncode == 0, done.stderr

    jobs = ["node", "prometheus", "alertmanager", "mtail", "demo", "loadgen"]
    for job in jobs:
        _eventually(stack, f'up{{job="{job}"}}')
    _eventually(stack, 'sum(rate(demo_http_requests_total{code=~"2.."}[15s]))')
    _eventually(stack, 'sum(rate(demo_log_requests_total{code=~"2.."}[15s]))')  # via the access log and mtail
    _eventually(stack, "loadgen_target_rps")
    _eventually(stack, 'node_pressure_cpu_waiting_seconds_total{job="node"}')  # the pressure collector is on

    running = {c["name"] for c in stack.status()["components"]}
    if "vigil" in running:
        # Everything scraped is also remote-written to the service. Only sending is checked: whether
        # it accepts samples before a model is loaded is the service's business (it answers 503 then).
        _eventually(stack, "sum(rate(prometheus_remote_storage_samples_total[15s]))")
        assert _query(stack, "sum(prometheus_remote_storage_samples_failed_total)") == 0
    if "collector" in running:
        _eventually(stack, 'up{job="collector"}')

    db = stack.home / "demo" / "orders.db"
    moved = db.with_suffix(".outage")
    db.rename(moved)  # the database goes away under a running service
    try:
        _eventually(stack, 'sum(demo_http_requests_total{code="503"})')
        _eventually(stack, 'sum(demo_http_errors_total{error="OperationalError"})')
        _eventually(stack, "sum(demo_log_server_errors_total)")
        _eventually(stack, 'sum(loadgen_requests_total{outcome="5xx"})')
    finally:
        moved.rename(db)
    # Recovery is real too: writes succeed again once the file is back. The test places an order itself:
    # the replayed trace starts at midnight, when the load generator may create no order for a minute.
    before = _query(stack, 'sum(demo_http_requests_total{code="201"})')
    deadline, status = time.monotonic() + 30, None
    while time.monotonic() < deadline and status != 201:
        resp = requests.post(stack.url("demo_app") + "/api/orders", json={"sku": "SKU-000", "quantity": 1}, timeout=5)
        status = resp.status_code
        if status == 409:
            requests.post(stack.url("demo_app") + "/api/inventory/SKU-000/restock", timeout=5)
        time.sleep(0.5)
    assert status == 201, f"the service did not take an order after the database came back: HTTP {status}"
    _eventually(stack, f'sum(demo_http_requests_total{{code="201"}}) - {before}')


def test_a_dead_target_alert_reaches_the_vigil_service_webhook(stack):
    done = stack.run("up", "--timeout", "60")
    assert done.returncode == 0, done.stderr
    assert "vigil" in {c["name"] for c in stack.status()["components"]}, "the stack runs no `vigil serve`"
    webhook = 'alertmanager_notifications_total{integration="webhook"}'
    _eventually(stack, 'up{job="alertmanager"}')
    os.kill(stack.pids()["node_exporter"], signal.SIGTERM)  # stays down: a clean stop

    # TargetDown (20 s) -> Alertmanager (group_wait 1 s) -> POST /v1/alertmanager on the Vigil service.
    _eventually(stack, f"sum({webhook})", timeout_s=75)
    assert _query(stack, 'sum(alertmanager_notifications_failed_total{integration="webhook"})') == 0
