"""Drives the demo service with the time-compressed demand of a real trace (see :mod:`vigil.demo.trace`).

Arrivals are Poisson at the replayed rate (so bursts in the trace become bursts of requests) over a
mix of reads and writes; an out-of-stock order triggers a restock, as a shop would. The generator's
own view (sent, outcome, client latency, the trace value it follows) is on ``/metrics`` at
``ports.loadgen``: ground truth for what the service was asked to do.

``python -m vigil.demo.loadgen [--target URL] [--base-rps R] [--day-s S] [--start 2014-11-01]``
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from vigil.config import Settings
from vigil.demo.trace import TRACE_RELPATH, Replay, Trace, find_trace
from vigil.selfmetrics import component_registry

SKUS = [f"SKU-{i:03d}" for i in range(40)]
# A few products sell far more than the rest, like any shop.
SKU_WEIGHTS = [1.0 / (i + 1) for i in range(len(SKUS))]
MIX = (("orders_list", 0.35), ("orders_get", 0.25), ("orders_create", 0.25), ("inventory_list", 0.15))


class LoadGen:
    def __init__(
        self,
        target: str,
        replay: Replay,
        registry: CollectorRegistry,
        max_in_flight: int = 16,
        timeout_s: float = 5.0,
        seed: int | None = None,
    ) -> None:
        self.target = target.rstrip("/")
        self.replay = replay
        self.rng = random.Random(seed)
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        self.max_order_id = 1
        self._local = threading.local()
        self._in_flight = threading.BoundedSemaphore(max_in_flight)
        self.sent = Counter(
            "loadgen_requests",
            "Requests sent by outcome (2xx, 4xx, 5xx, error)",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "loadgen_request_duration_seconds",
            "Client-side latency",
            ["endpoint"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.shed = Counter(
            "loadgen_shed", "Requests not sent because max_in_flight were outstanding", registry=registry
        )
        self.target_rps = Gauge("loadgen_target_rps", "Request rate the replay asks for now", registry=registry)
        self.trace_value = Gauge("loadgen_trace_value", "Current (interpolated) trace value", registry=registry)
        self.trace_time = Gauge(
            "loadgen_trace_timestamp_seconds", "Position in the replayed trace (unix time)", registry=registry
        )

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _call(self, endpoint: str, method: str, path: str, body: dict | None = None) -> requests.Response | None:
        start = time.perf_counter()
        try:
            resp = self._session().request(method, self.target + path, json=body, timeout=self.timeout_s)
            outcome = f"{resp.status_code // 100}xx"
        except requests.RequestException:
            resp, outcome = None, "error"
        self.latency.labels(endpoint).observe(time.perf_counter() - start)
        self.sent.labels(endpoint, outcome).inc()
        return resp

    def one_request(self, endpoint: str) -> None:
        try:
            if endpoint == "orders_list":
                self._call(endpoint, "GET", f"/api/orders?limit={self.rng.choice((10, 20, 50))}")
            elif endpoint == "orders_get":
                # Slightly past the newest id, so a few lookups miss (404) as real clients' do.
                order_id = self.rng.randint(1, int(self.max_order_id * 1.05) + 1)
                self._call(endpoint, "GET", f"/api/orders/{order_id}")
            elif endpoint == "orders_create":
                sku = self.rng.choices(SKUS, SKU_WEIGHTS)[0]
                body = {"sku": sku, "quantity": self.rng.randint(1, 3)}
                resp = self._call(endpoint, "POST", "/api/orders", body)
                if resp is not None and resp.status_code == 201:
                    self.max_order_id = max(self.max_order_id, int(resp.json()["id"]))
                elif resp is not None and resp.status_code == 409:
                    self._call("inventory_restock", "POST", f"/api/inventory/{sku}/restock")
            else:
                self._call(endpoint, "GET", "/api/inventory")
        finally:
            self._in_flight.release()

    def pick(self) -> str:
        return self.rng.choices([m[0] for m in MIX], [m[1] for m in MIX])[0]

    def run(self, stop: threading.Event, duration_s: float = 0.0) -> None:
        """Send requests until ``stop`` is set (or ``duration_s`` passes, when positive)."""
        t0 = time.monotonic()
        next_at = t0
        with ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="loadgen") as pool:
            while not stop.is_set():
                now = time.monotonic()
                elapsed = now - t0
                if duration_s and elapsed >= duration_s:
                    break
                rate = max(self.replay.rate(elapsed), 0.01)
                self.target_rps.set(rate)
                self.trace_value.set(self.replay.value(elapsed))
                self.trace_time.set(self.replay.trace_time(elapsed))
                if now < next_at:
                    stop.wait(min(next_at - now, 0.2))
                    continue
                next_at += self.rng.expovariate(rate)
                next_at = max(next_at, now - 1.0)  # after a stall, do not fire a backlog all at once
                if self._in_flight.acquire(blocking=False):
                    pool.submit(self.one_request, self.pick())
                else:
                    self.shed.inc()


PACKAGED_TRACE_ROOT = Path(__file__).resolve().parent / "trace_data"


def trace_roots(settings: Settings) -> list[Path]:
    # The copy shipped with Vigil comes last, so a configured datasets folder wins.
    return [settings.data_dir, settings.home / "datasets", PACKAGED_TRACE_ROOT]


def main(argv: list[str] | None = None) -> None:
    from vigil.config import load_settings

    settings = load_settings()
    parser = argparse.ArgumentParser(prog="python -m vigil.demo.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=settings.url("demo_app"))
    parser.add_argument("--port", type=int, default=settings.ports.loadgen, help="metrics port; 0: none")
    parser.add_argument("--base-rps", type=float, default=settings.demo.base_rps)
    parser.add_argument("--day-s", type=float, default=settings.demo.day_s)
    parser.add_argument("--start", default=settings.demo.trace_start)
    parser.add_argument("--trace", type=Path, default=None, help=f"default: {TRACE_RELPATH} under VIGIL_DATA_DIR")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0: until stopped")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)

    from vigil.errors import VigilError

    try:
        trace = Trace.from_csv(args.trace or find_trace(trace_roots(settings)))
        replay = Replay(trace, args.base_rps, args.day_s, trace.start_offset(args.start))
    except VigilError as exc:
        print(f"loadgen: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    registry = component_registry()
    gen = LoadGen(args.target, replay, registry, seed=args.seed)
    if args.port:
        start_http_server(args.port, addr=settings.bind_host, registry=registry)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(
        f"loadgen: {args.target} at {args.base_rps} rps mean, one trace day per {args.day_s}s "
        f"(x{replay.speedup:.0f}), pid {os.getpid()}",
        flush=True,
    )
    gen.run(stop, args.duration)


if __name__ == "__main__":
    main()
