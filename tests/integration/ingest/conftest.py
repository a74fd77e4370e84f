"""Real Prometheus, node_exporter and VictoriaMetrics on free loopback ports, in a tmp dir."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, unavailable, wait_http


@dataclass
class Service:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its stderr in ``log``; the child keeps the file, this process closes its copy."""
    with log.open("wb") as err:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed")
    return path


def start_node_exporter(tmp: Path) -> Service:
    port = free_port()
    log = tmp / f"node_exporter-{port}.log"
    proc = _spawn(
        [
            _binary("prometheus-node-exporter"),
            f"--web.listen-address=127.0.0.1:{port}",
            "--no-collector.systemd",
        ],
        log,
    )
    svc = Service("node_exporter", f"http://127.0.0.1:{port}", proc, log)
    wait_http(f"{svc.url}/metrics")
    return svc


def start_prometheus(tmp: Path, targets: list[str], scrape_interval: str = "1s", extra_config: str = "") -> Service:
    port = free_port()
    root = tmp / f"prometheus-{port}"
    root.mkdir()
    config = root / "prometheus.yml"
    static = ", ".join(f"'{t}'" for t in targets)
    config.write_text(
        f"""global:
  scrape_interval: {scrape_interval}
  evaluation_interval: {scrape_interval}
scrape_configs:
  - job_name: node
    static_configs:
      - targets: [{static}]
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:{port}']
{extra_config}"""
    )
    log = root / "prometheus.log"
    proc = _spawn(
        [
            _binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ],
        log,
    )
    svc = Service("prometheus", f"http://127.0.0.1:{port}", proc, log)
    wait_http(f"{svc.url}/-/ready", ok=lambda r: r.status_code == 200)
    return svc


def start_victoria_metrics(tmp: Path, targets: list[str]) -> Service:
    port = free_port()
    root = tmp / f"vm-{port}"
    root.mkdir()
    scrape = root / "scrape.yml"
    static = ", ".join(f"'{t}'" for t in targets)
    scrape.write_text(
        f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: [{static}]
"""
    )
    log = root / "vm.log"
    proc = _spawn(
        [
            _binary("victoria-metrics"),
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={root / 'data'}",
            f"-promscrape.config={scrape}",
            # VictoriaMetrics hides the newest 30 s from queries by default; tests read fresh data.
            "-search.latencyOffset=1s",
            "-retentionPeriod=1d",
        ],
        log,
    )
    svc = Service("victoria-metrics", f"http://127.0.0.1:{port}", proc, log)
    wait_http(f"{svc.url}/health", ok=lambda r: r.status_code == 200)
    return svc


def wait_for_samples(url: str, expr: str, min_points: int, timeout_s: float = 60.0) -> None:
    """Wait until ``expr`` has at least ``min_points`` raw samples stored (a range-vector count)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            resp = requests.get(f"{url}/api/v1/query", params={"query": f"count_over_time({expr}[10m])"}, timeout=5)
            result = resp.json()["data"]["result"]
            last = max((float(r["value"][1]) for r in result), default=0.0)
            if last >= min_points:
                return
        except (requests.RequestException, KeyError, ValueError) as exc:
            last = exc
        time.sleep(0.5)
    pytest.fail(f"{url}: {expr} did not reach {min_points} samples in {timeout_s}s (last {last})")


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ingest-stack")


@pytest.fixture(scope="session")
def node_exporter(stack_dir: Path) -> Iterator[Service]:
    svc = start_node_exporter(stack_dir)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def prometheus(stack_dir: Path, node_exporter: Service) -> Iterator[Service]:
    svc = start_prometheus(stack_dir, [node_exporter.url.removeprefix("http://")])
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def victoria_metrics(stack_dir: Path, node_exporter: Service) -> Iterator[Service]:
    svc = start_victoria_metrics(stack_dir, [node_exporter.url.removeprefix("http://")])
    yield svc
    svc.stop()
