"""A small orders API on SQLite: the real service the local stack watches.

It fails for real reasons: the database file is opened read-write without create, so a removed,
unreadable or locked database gives errors (503), and ``GET /api/inventory`` can call an optional
downstream dependency (502 when it is down or slow). Each request is measured twice on purpose:
by prometheus-client on ``/metrics`` (the app's own view) and through a JSON access log that mtail
turns into metrics (the log-aggregation view, ``deploy/mtail/demo_app.mtail``). Calls to its two
dependencies, the database and the inventory service, are measured as any instrumented client
measures them: a duration histogram and failures by error, per dependency; they tell a slow or
broken dependency from the service's own slowness.

Run it with gunicorn, as the stack does: ``gunicorn 'vigil.demo.app:create_app()'``.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from flask import Flask, Response, g, jsonify, request
from prometheus_client import (
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException

UNINSTRUMENTED = {"metrics_view", "healthz"}  # scrapes and probes are not the traffic being watched
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PRODUCTS = 40

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER NOT NULL, stock INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sku TEXT NOT NULL REFERENCES products(sku),
    quantity INTEGER NOT NULL, total_cents INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS orders_created ON orders(created_at);
"""


def init_db(path: Path) -> None:
    """Create and seed the database if it does not exist yet (never at request time: see module doc)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer under load
        conn.executescript(SCHEMA)
        if conn.execute("SELECT COUNT(*) FROM products").fetchone()[0] == 0:
            conn.executemany(
                "INSERT INTO products VALUES (?, ?, ?, ?)",
                [(f"SKU-{i:03d}", f"Product {i}", 199 + 37 * i, 500) for i in range(PRODUCTS)],
            )
    conn.close()


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "demo_http_requests", "Requests handled", ["endpoint", "method", "code"], registry=registry
        )
        self.latency = Histogram(
            "demo_http_request_duration_seconds",
            "Request latency",
            ["endpoint", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.errors = Counter("demo_http_errors", "Failed requests by cause", ["endpoint", "error"], registry=registry)
        self.in_flight = Gauge("demo_http_requests_in_flight", "Requests being handled", registry=registry)
        self.dependency_latency = Histogram(
            "demo_dependency_duration_seconds",
            "Calls to a dependency, failed ones included",
            ["dependency"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.dependency_failures = Counter(
            "demo_dependency_failures",
            "Failed calls to a dependency, by error",
            ["dependency", "error"],
            registry=registry,
        )

    @contextmanager
    def call(self, dependency: str) -> Iterator[None]:
        """Time one call to ``dependency``; count it as failed, by exception type, if it raises."""
        start = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self.dependency_failures.labels(dependency, type(exc).__name__).inc()
            raise
        finally:
            self.dependency_latency.labels(dependency).observe(time.perf_counter() - start)


def _timed_connection(metrics: Metrics) -> type[sqlite3.Connection]:
    """A connection class whose statements count as calls to the ``database`` dependency: SQLite
    waits for a lock inside ``execute``, so contention and outages show there."""

    class TimedConnection(sqlite3.Connection):
        def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
            with metrics.call("database"):
                return super().execute(sql, parameters)

    return TimedConnection


class AccessLog:
    """One JSON object per line, keys in a fixed order: mtail's regexes depend on it."""

    def __init__(self, path: Path | None) -> None:
        self.logger = logging.getLogger(f"vigil.demo.access.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Rotated by size so a long `make run` cannot fill the disk; mtail follows the rename.
            handler = logging.handlers.RotatingFileHandler(path, maxBytes=64 * 2**20, backupCount=1)
            handler.setFormatter(logging.Formatter("%(message)s"))
            self.logger.addHandler(handler)

    @staticmethod
    def _head(kind: str, endpoint: str) -> str:
        ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return (
            f'{{"ts":"{ts}","type":"{kind}","method":{json.dumps(request.method)},'
            f'"endpoint":"{endpoint}","path":{json.dumps(request.full_path.rstrip("?"))}'
        )

    def access(self, endpoint: str, status: int, duration_s: float, size: int) -> None:
        # Formatted by hand: json.dumps would write small durations as 1e-05, which mtail's regex rejects.
        self.logger.info(
            self._head("access", endpoint) + f',"status":{status},"duration_s":{duration_s:.6f},"bytes":{size}}}'
        )

    def error(self, endpoint: str, error: str, message: str) -> None:
        self.logger.info(self._head("error", endpoint) + f',"error":"{error}","message":{json.dumps(message)}}}')


class DependencyDown(Exception):
    """The optional downstream service failed; becomes a 502."""


def _registry_with_process_metrics() -> CollectorRegistry:
    # The demo is a stand-alone service (it imports nothing from Vigil) that exports what any
    # instrumented service does, its own process_* families included.
    registry = CollectorRegistry()
    registry.register(PROCESS_COLLECTOR)
    registry.register(PLATFORM_COLLECTOR)
    return registry


def create_app(
    db_path: str | Path | None = None,
    access_log: str | Path | None = None,
    downstream_url: str | None = None,
    registry: CollectorRegistry | None = None,
) -> Flask:
    """Build the app; arguments left out come from Vigil's settings (``VIGIL_DEMO__*``, ``VIGIL_HOME``)."""
    if db_path is None or access_log is None or downstream_url is None:
        from vigil.config import load_settings

        settings = load_settings()
        db_path = db_path if db_path is not None else settings.demo_db_path
        access_log = access_log if access_log is not None else settings.demo_access_log
        downstream_url = downstream_url if downstream_url is not None else settings.demo.downstream_url
    db_file = Path(db_path)
    init_db(db_file)
    registry = registry if registry is not None else _registry_with_process_metrics()
    metrics = Metrics(registry)
    connection_class = _timed_connection(metrics)
    log = AccessLog(Path(access_log) if access_log else None)

    app = Flask(__name__)
    app.config.update(DB_PATH=db_file, DOWNSTREAM_URL=downstream_url, REGISTRY=registry)

    def db() -> sqlite3.Connection:
        if "db" not in g:
            # mode=rw: a missing database is an outage to report, not an empty one to create silently.
            with metrics.call("database"):
                g.db = sqlite3.connect(f"file:{db_file}?mode=rw", uri=True, timeout=2.0, factory=connection_class)
            g.db.row_factory = sqlite3.Row
        return g.db

    def endpoint_name() -> str:
        return request.url_rule.endpoint if request.url_rule is not None else "unmatched"

    @app.before_request
    def _start() -> None:
        g.start = time.perf_counter()
        if endpoint_name() not in UNINSTRUMENTED:
            metrics.in_flight.inc()

    @app.after_request
    def _record(resp: Response) -> Response:
        endpoint = endpoint_name()
        if endpoint in UNINSTRUMENTED:
            return resp
        elapsed = time.perf_counter() - g.start
        metrics.in_flight.dec()
        metrics.requests.labels(endpoint, request.method, str(resp.status_code)).inc()
        metrics.latency.labels(endpoint, request.method).observe(elapsed)
        log.access(endpoint, resp.status_code, elapsed, resp.calculate_content_length() or 0)
        return resp

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

    def fail(error: Exception, status: int, message: str) -> tuple[Response, int]:
        endpoint = endpoint_name()
        name = type(error).__name__
        metrics.errors.labels(endpoint, name).inc()
        log.error(endpoint, name, str(error))
        return jsonify(error=message), status

    @app.errorhandler(sqlite3.Error)
    def _db_error(exc: sqlite3.Error) -> tuple[Response, int]:
        return fail(exc, 503, "database unavailable")

    @app.errorhandler(DependencyDown)
    def _dependency_error(exc: DependencyDown) -> tuple[Response, int]:
        return fail(exc, 502, "inventory service unavailable")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        if isinstance(exc, HTTPException):
            return exc
        return fail(exc, 500, "internal error")

    @app.errorhandler(404)
    def _not_found(_exc: Exception) -> tuple[Response, int]:
        return jsonify(error="not found"), 404

    @app.get("/api/orders")
    def orders_list() -> Any:
        limit = min(max(request.args.get("limit", 20, type=int), 1), 100)
        rows = db().execute(
            "SELECT o.id, o.sku, p.name, o.quantity, o.total_cents, o.created_at FROM orders o "
            "JOIN products p ON p.sku = o.sku ORDER BY o.id DESC LIMIT ?",
            (limit,),
        )
        return jsonify(orders=[dict(r) for r in rows])

    @app.post("/api/orders")
    def orders_create() -> Any:
        body = request.get_json(silent=True) or {}
        sku, quantity = body.get("sku"), body.get("quantity", 1)
        if not isinstance(sku, str) or not isinstance(quantity, int) or not 1 <= quantity <= 100:
            return jsonify(error="need {'sku': str, 'quantity': 1..100}"), 400
        conn = db()
        with conn:  # one transaction: stock and order change together or not at all
            product = conn.execute("SELECT price_cents FROM products WHERE sku = ?", (sku,)).fetchone()
            if product is None:
                return jsonify(error=f"unknown sku {sku}"), 404
            taken = conn.execute(
                "UPDATE products SET stock = stock - ? WHERE sku = ? AND stock >= ?", (quantity, sku, quantity)
            ).rowcount
            if not taken:
                return jsonify(error=f"{sku} is out of stock"), 409
            cur = conn.execute(
                "INSERT INTO orders (sku, quantity, total_cents, created_at) VALUES (?, ?, ?, ?)",
                (sku, quantity, quantity * product["price_cents"], time.time()),
            )
        return jsonify(id=cur.lastrowid, sku=sku, quantity=quantity), 201

    @app.get("/api/orders/<int:order_id>")
    def orders_get(order_id: int) -> Any:
        row = db().execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        if row is None:
            return jsonify(error=f"no order {order_id}"), 404
        return jsonify(dict(row))

    @app.get("/api/inventory")
    def inventory_list() -> Any:
        rows = [dict(r) for r in db().execute("SELECT sku, name, price_cents, stock FROM products ORDER BY sku")]
        if app.config["DOWNSTREAM_URL"]:
            try:
                with metrics.call("inventory"):
                    requests.get(app.config["DOWNSTREAM_URL"], timeout=1.0).raise_for_status()
            except requests.RequestException as exc:
                raise DependencyDown(f"{app.config['DOWNSTREAM_URL']}: {type(exc).__name__}") from None
        return jsonify(products=rows)

    @app.post("/api/inventory/<sku>/restock")
    def inventory_restock(sku: str) -> Any:
        conn = db()
        with conn:
            updated = conn.execute("UPDATE products SET stock = stock + 200 WHERE sku = ?", (sku,)).rowcount
        if not updated:
            return jsonify(error=f"unknown sku {sku}"), 404
        return jsonify(sku=sku, restocked=200)

    @app.get("/healthz")
    def healthz() -> Any:
        # Liveness only: a database outage is what the stack should *detect*, not a reason to restart.
        return jsonify(status="ok")

    @app.get("/metrics")
    def metrics_view() -> Response:
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    return app
