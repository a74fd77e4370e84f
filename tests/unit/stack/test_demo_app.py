"""The demo orders API: real SQLite, real metrics, a log format mtail depends on, real failures."""

from __future__ import annotations

import json
import os

import pytest
from prometheus_client import CollectorRegistry

from tests.conftest import free_port
from vigil.demo.app import create_app


@pytest.fixture
def demo(tmp_path):
    registry = CollectorRegistry()
    db = tmp_path / "orders.db"
    log = tmp_path / "access.log"
    app = create_app(db_path=db, access_log=log, downstream_url="", registry=registry)
    return app.test_client(), registry, db, log


def _lines(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_order_round_trip_updates_stock_and_metrics(demo):
    client, registry, _, _ = demo
    before = {p["sku"]: p["stock"] for p in client.get("/api/inventory").get_json()["products"]}

    created = client.post("/api/orders", json={"sku": "SKU-001", "quantity": 3})
    assert created.status_code == 201
    order = client.get(f"/api/orders/{created.get_json()['id']}").get_json()
    assert (order["sku"], order["quantity"]) == ("SKU-001", 3)
    after = {p["sku"]: p["stock"] for p in client.get("/api/inventory").get_json()["products"]}
    assert after["SKU-001"] == before["SKU-001"] - 3
    assert client.get("/api/orders").get_json()["orders"][0]["id"] == order["id"]

    get = registry.get_sample_value
    assert get("demo_http_requests_total", {"endpoint": "orders_create", "method": "POST", "code": "201"}) == 1
    assert get("demo_http_request_duration_seconds_count", {"endpoint": "inventory_list", "method": "GET"}) == 2
    assert get("demo_http_requests_in_flight") == 0
    # Every statement is a call to the database; none failed.
    assert get("demo_dependency_duration_seconds_count", {"dependency": "database"}) >= 7
    assert get("demo_dependency_failures_total", {"dependency": "database", "error": "OperationalError"}) is None


def test_out_of_stock_is_a_conflict_and_restock_fixes_it(demo):
    client, *_ = demo
    for _ in range(5):
        assert client.post("/api/orders", json={"sku": "SKU-002", "quantity": 100}).status_code == 201
    assert client.post("/api/orders", json={"sku": "SKU-002", "quantity": 1}).status_code == 409
    assert client.post("/api/inventory/SKU-002/restock").status_code == 200
    assert client.post("/api/orders", json={"sku": "SKU-002", "quantity": 1}).status_code == 201


@pytest.mark.parametrize(
    ("body", "status"), [({"sku": "SKU-001", "quantity": 0}, 400), ({"quantity": 1}, 400), ({"sku": "NOPE"}, 404)]
)
def test_bad_orders_are_client_errors(demo, body, status):
    client, *_ = demo
    assert client.post("/api/orders", json=body).status_code == status


def test_access_log_has_the_fixed_key_order_mtail_parses(demo):
    client, _, _, log = demo
    client.get("/api/orders/999999")
    client.get("/api/orders?limit=5")
    client.get("/metrics")  # scrapes are not logged
    client.get("/healthz")
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first) == ["ts", "type", "method", "endpoint", "path", "status", "duration_s", "bytes"]
    assert (first["type"], first["endpoint"], first["status"]) == ("access", "orders_get", 404)
    assert '"duration_s":0.' in lines[0]  # fixed-point, never 1e-05
    assert json.loads(lines[1])["path"] == "/api/orders?limit=5"


def test_database_outage_gives_503_error_metrics_and_error_log(demo):
    client, registry, db, log = demo
    os.rename(db, db.with_suffix(".moved"))  # the outage: the file is gone, and must not be recreated

    resp = client.get("/api/orders")
    assert resp.status_code == 503
    assert not db.exists()
    assert registry.get_sample_value("demo_http_errors_total", {"endpoint": "orders_list", "error": "OperationalError"})
    kinds = [(e["type"], e.get("status"), e.get("error")) for e in _lines(log)]
    assert kinds == [("error", None, "OperationalError"), ("access", 503, None)]
    assert client.get("/healthz").status_code == 200  # liveness stays up: the outage is to be detected
    failed = {"dependency": "database", "error": "OperationalError"}
    assert registry.get_sample_value("demo_dependency_failures_total", failed) == 1


def test_downstream_dependency_outage_gives_502(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/stock"  # nothing listens there
    registry = CollectorRegistry()
    client = create_app(tmp_path / "o.db", tmp_path / "a.log", dead, registry).test_client()
    assert client.get("/api/inventory").status_code == 502
    assert registry.get_sample_value(
        "demo_http_errors_total", {"endpoint": "inventory_list", "error": "DependencyDown"}
    )
    assert client.get("/api/orders").status_code == 200
    refused = {"dependency": "inventory", "error": "ConnectionError"}
    assert registry.get_sample_value("demo_dependency_failures_total", refused) == 1
    assert registry.get_sample_value("demo_dependency_duration_seconds_count", {"dependency": "inventory"}) == 1


def test_unknown_path_is_labelled_unmatched(demo):
    client, registry, _, _ = demo
    assert client.get("/nope").status_code == 404
    assert registry.get_sample_value(
        "demo_http_requests_total", {"endpoint": "unmatched", "method": "GET", "code": "404"}
    )
