"""Real Prometheus, Alertmanager and `vigil serve` processes on free ports (tests and benchmarks)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not reached in {timeout_s}s")


@contextmanager
def process(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def binary(name: str) -> str | None:
    return shutil.which(name)


@contextmanager
def alertmanager(workdir: Path, port: int | None = None) -> Iterator[str]:
    port = port or free_port()
    config = {"route": {"receiver": "null", "group_wait": "0s"}, "receivers": [{"name": "null"}]}
    (workdir / "am.yml").write_text(yaml.safe_dump(config))
    argv = [
        binary("prometheus-alertmanager") or "alertmanager",
        f"--config.file={workdir / 'am.yml'}",
        f"--storage.path={workdir / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    url = f"http://127.0.0.1:{port}"
    with process(argv, workdir / "alertmanager.log"):
        wait_until(lambda: requests.get(f"{url}/-/ready", timeout=1).ok, 30, "Alertmanager ready")
        yield url


@contextmanager
def prometheus(
    workdir: Path, scrape: dict[str, str], remote_write_url: str | None, interval: str = "1s"
) -> Iterator[str]:
    """``scrape`` maps job name -> host:port target."""
    port = free_port()
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [t]}]} for job, t in scrape.items()],
        "remote_write": []
        if remote_write_url is None
        else [
            {
                "url": remote_write_url,
                # Latency over batching: flush every 100 ms instead of the 5 s default.
                "queue_config": {"batch_send_deadline": "100ms", "min_backoff": "50ms", "max_backoff": "1s"},
            }
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    argv = [
        binary("prometheus") or "prometheus",
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    url = f"http://127.0.0.1:{port}"
    with process(argv, workdir / "prometheus.log"):
        wait_until(lambda: requests.get(f"{url}/-/ready", timeout=1).ok, 30, "Prometheus ready")
        yield url


@contextmanager
def vigil_serve(
    home: Path, alertmanager_url: str, extra_env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[str]:
    with vigil_serve_process(home, alertmanager_url, extra_env, port) as (url, _proc):
        yield url


@contextmanager
def vigil_serve_process(
    home: Path, alertmanager_url: str, extra_env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``vigil serve`` in a session of its own (its process group is ``proc.pid``): (url, process)."""
    port = port or free_port()
    env = {
        **os.environ,
        "VIGIL_HOME": str(home),
        "VIGIL_PORTS__VIGIL": str(port),
        "VIGIL_ALERTMANAGER_URL": alertmanager_url,
        "VIGIL_API_TOKEN": "integration-token",
        **(extra_env or {}),
    }
    env.pop("VIGIL_CONFIG", None)
    argv = [sys.executable, "-m", "vigil.cli.main", "serve", "--threads", "4"]
    url = f"http://127.0.0.1:{port}"
    with process(argv, home / "vigil-serve.log", env=env) as proc:
        wait_until(lambda: requests.get(f"{url}/livez", timeout=1).ok, 60, "vigil serve live")
        yield url, proc


class ReplayExporter:
    """A scrape target serving real SMD rows, one row per scrape, as gauges ``<name>{}``."""

    def __init__(self, names: list[str], rows: list[list[float]]) -> None:
        self.names, self.rows, self.index = names, rows, 0
        self.lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with exporter.lock:
                    row = exporter.rows[min(exporter.index, len(exporter.rows) - 1)]
                    exporter.index += 1
                text = "".join(f"{n} {v!r}\n" for n, v in zip(exporter.names, row, strict=True))
                payload = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.target = f"127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ReplayExporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
