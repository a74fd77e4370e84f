"""A real Prometheus scraping a real node_exporter, the real demo service (its inventory dependency
down: nothing listens where it calls) and a small exporter of Vigil's own series.

The small exporter (prometheus_client over HTTP, honor_labels) stands in for ``vigil serve``'s
/metrics: it publishes ``vigil_anomaly*`` series and a few node_exporter-named series for entities that
no real host here has, including one whose name is a PromQL injection.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from tests.conftest import free_port, unavailable, wait_http

INJECTED = '"} or vector(1) #'
FAKE_HOST = "web-7:9100"  # a host that exists only in the small exporter


class VigilSeries:
    """A collector whose values tests may change while Prometheus scrapes it."""

    def __init__(self) -> None:
        self.scores = {FAKE_HOST: 0.93, INJECTED: 0.41}
        self.alarms = {FAKE_HOST: 1.0, INJECTED: 0.0}
        self.top = {FAKE_HOST: ("cpu_busy", 0.62), INJECTED: ("load1", 0.5)}
        self.load1 = {FAKE_HOST: 7.5, INJECTED: 0.5}
        self._idle = {FAKE_HOST: 0.0, INJECTED: 0.0}
        self._started = time.monotonic()

    def collect(self):  # noqa: ANN201 - prometheus_client's collector protocol
        score = GaugeMetricFamily("vigil_anomaly_score", "score", labels=["entity"])
        alarm = GaugeMetricFamily("vigil_anomaly", "alarm", labels=["entity"])
        top = GaugeMetricFamily("vigil_anomaly_top_metric", "top", labels=["entity", "metric"])
        for entity, value in self.scores.items():
            score.add_metric([entity], value)
            alarm.add_metric([entity], self.alarms[entity])
            metric, share = self.top[entity]
            top.add_metric([entity, metric], share)
        elapsed = time.monotonic() - self._started
        # The fake host's load and memory use swing together (a correlation to find); the injected
        # entity's load stays at its fixed value.
        wave = math.sin(elapsed / 4)
        load = GaugeMetricFamily("node_load1", "load", labels=["instance"])
        for entity, value in self.load1.items():
            load.add_metric([entity], value + 2 * wave if entity == FAKE_HOST else value)
        total = 8e9
        mem_total = GaugeMetricFamily("node_memory_MemTotal_bytes", "mem", labels=["instance"])
        mem_total.add_metric([FAKE_HOST], total)
        mem_avail = GaugeMetricFamily("node_memory_MemAvailable_bytes", "mem", labels=["instance"])
        mem_avail.add_metric([FAKE_HOST], total * (0.5 - 0.3 * wave))
        # A CPU that is idle 5% of the time: cpu_busy ~0.95 for the fake host.
        cpu = CounterMetricFamily("node_cpu_seconds", "cpu", labels=["instance", "cpu", "mode"])
        for entity in self.load1:
            cpu.add_metric([entity, "0", "idle"], 0.05 * elapsed)
            cpu.add_metric([entity, "0", "user"], 0.95 * elapsed)
        info = GaugeMetricFamily("vigil_model_info", "model", labels=["version"])
        info.add_metric(["v3"], 1.0)
        yield from (score, alarm, top, load, mem_total, mem_avail, cpu, info)


@dataclass
class PromStack:
    prometheus_url: str
    node_instance: str  # the real node_exporter's instance label
    series: VigilSeries
    workdir: Path
    demo_url: str  # the demo service, scraped as job "demo"


def _binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    unavailable(f"{names[0]} is not installed (scripts/setup.sh installs it)")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def prom_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromStack]:
    workdir = tmp_path_factory.mktemp("chatops-stack")
    procs: list[subprocess.Popen[bytes]] = []
    series = VigilSeries()
    registry = CollectorRegistry()
    registry.register(series)  # type: ignore[arg-type]
    exporter_port = free_port()
    server, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    from vigil.demo.app import create_app

    dead = f"http://127.0.0.1:{free_port()}/stock"
    demo = BackgroundServer(create_app(workdir / "orders.db", "", dead, CollectorRegistry())).__enter__()
    try:
        node_port = free_port()
        with (workdir / "node_exporter.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        _binary("prometheus-node-exporter", "node_exporter"),
                        f"--web.listen-address=127.0.0.1:{node_port}",
                        # Only what the evidence reads: a full scrape can outlast 1 s on a busy machine.
                        "--collector.disable-defaults",
                        "--collector.cpu",
                        "--collector.meminfo",
                        "--collector.loadavg",
                        "--collector.filesystem",
                        "--collector.diskstats",
                        "--collector.netdev",
                        "--collector.netstat",
                        "--collector.vmstat",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_http(f"http://127.0.0.1:{node_port}/metrics")
        prom_port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: node\n"
            "    scrape_interval: 2s\n"
            "    scrape_timeout: 2s\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{node_port}']}}]\n"
            "  - job_name: vigil\n"
            "    honor_labels: true\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
            "  - job_name: demo\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{demo.port}']}}]\n"
        )
        with (workdir / "prometheus.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        _binary("prometheus"),
                        f"--config.file={config}",
                        f"--storage.tsdb.path={workdir / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                        "--log.level=warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        url = f"http://127.0.0.1:{prom_port}"
        wait_http(f"{url}/-/ready")

        def rates_ready(resp: requests.Response) -> bool:
            # rate() needs two scrapes of each target.
            return len(resp.json()["data"]["result"]) == 2

        wait_http(
            f"{url}/api/v1/query?query=count by (job) (rate(node_cpu_seconds_total[1m]))",
            timeout_s=60,
            ok=rates_ready,
        )
        yield PromStack(url, f"127.0.0.1:{node_port}", series, workdir, demo.url)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        demo.__exit__()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class BackgroundServer:
    """Serve a WSGI app (the real Flask app) on a free port from a thread."""

    def __init__(self, app) -> None:  # noqa: ANN001
        from werkzeug.serving import make_server

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
