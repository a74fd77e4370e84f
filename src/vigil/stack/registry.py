"""What the local stack runs, as data: one :class:`Component` per child process.

Adding a component means adding one entry to :func:`components`.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from vigil.config import Settings
from vigil.errors import ConfigError, DependencyMissing


def etc_dir(settings: Settings) -> Path:
    return settings.home / "etc"


@dataclass(frozen=True)
class Component:
    name: str  # also the Ports field, the pid file and the log file name
    command: list[str]
    port: int
    health_path: str  # a 2xx answer here means healthy
    url_path: str = "/"  # what a person opens
    package: str = ""  # Debian package that provides command[0]
    scrape_path: str = "/metrics"
    job: str = ""  # Prometheus job name; empty: not scraped

    def url(self, host: str) -> str:
        return f"http://{host}:{self.port}{self.url_path}"

    def health_url(self, host: str) -> str:
        return f"http://{host}:{self.port}{self.health_path}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """The components ``vigil up`` runs, in start order."""

    components: list[Component]

    def to_dict(self) -> dict[str, Any]:
        return {"components": [c.to_dict() for c in self.components]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        known = {f.name for f in fields(Component)}  # a plan written by another version may carry more
        return cls([Component(**{k: v for k, v in c.items() if k in known}) for c in data["components"]])


def _vigil(*args: str) -> list[str]:
    return [sys.executable, "-m", "vigil.cli.main", *args]


def components(settings: Settings) -> list[Component]:
    """Every component of the local stack in start order (dependencies before what uses them)."""
    p, host, etc = settings.ports, settings.bind_host, etc_dir(settings)
    addr = lambda port: f"{host}:{port}"  # noqa: E731
    return [
        Component(
            "node_exporter",
            [
                "prometheus-node-exporter",
                f"--web.listen-address={addr(p.node_exporter)}",
                "--no-collector.systemd",  # the sandbox and containers have no systemd to ask
                "--collector.pressure",
            ],
            p.node_exporter,
            "/metrics",
            package="prometheus-node-exporter",
            job="node",
        ),
        Component(
            "alertmanager",
            [
                "prometheus-alertmanager",
                f"--config.file={etc / 'alertmanager.yml'}",
                f"--storage.path={settings.home / 'alertmanager'}",
                f"--web.listen-address={addr(p.alertmanager)}",
                f"--web.external-url=http://{addr(p.alertmanager)}/",  # links in notifications must resolve
                "--cluster.listen-address=",  # no gossip: one instance, and no second port to collide
            ],
            p.alertmanager,
            "/-/ready",
            package="prometheus-alertmanager",
            job="alertmanager",
        ),
        Component("vigil", _vigil("serve"), p.vigil, "/livez", job="vigil"),
        Component(
            "demo_app",
            [
                sys.executable,
                "-m",
                "gunicorn",
                f"--bind={addr(p.demo_app)}",
                # One process with threads: the app's prometheus-client registry lives in that process,
                # so /metrics is complete without the multiprocess mode's shared files. Enough threads that
                # requests waiting out their database's 2 s lock timeout (a DB outage, at up to ~20 requests
                # a second) leave some for /metrics: with 8 the scrapes queued behind them, the outage
                # looked like the service going silent, and its failing database calls never reached
                # Prometheus to name the cause.
                "--workers=1",
                "--worker-class=gthread",
                "--threads=64",
                "--graceful-timeout=5",
                "--no-control-socket",  # its default path is per user, shared by every stack on the host
                "vigil.demo.app:create_app()",
            ],
            p.demo_app,
            "/healthz",
            url_path="/api/orders",
            job="demo",
        ),
        Component(
            "mtail",
            [
                "mtail",
                f"--progs={settings.deploy_dir / 'mtail'}",
                f"--logs={settings.demo_access_log}",
                f"--address={host}",
                f"--port={p.mtail}",
                "--logtostderr",
            ],
            p.mtail,
            "/metrics",
            package="mtail",
            job="mtail",
        ),
        Component(
            "loadgen",
            [sys.executable, "-m", "vigil.demo.loadgen"],
            p.loadgen,
            "/metrics",
            url_path="/metrics",
            job="loadgen",
        ),
        Component(
            "prometheus",
            [
                "prometheus",
                f"--config.file={etc / 'prometheus.yml'}",
                f"--storage.tsdb.path={settings.home / 'prometheus'}",
                f"--web.listen-address={addr(p.prometheus)}",
                f"--web.external-url=http://{addr(p.prometheus)}/",  # alerts' generatorURL, else the hostname:9090
                "--storage.tsdb.retention.time=2d",  # the archive keeps history; Prometheus is the buffer
                "--web.enable-lifecycle",
                # On shutdown Prometheus keeps retrying unsent remote_write batches for up to this long; the
                # default minute would outlast the supervisor's 10 s grace whenever the receiver refuses.
                "--storage.remote.flush-deadline=5s",
            ],
            p.prometheus,
            "/-/ready",
            package="prometheus",
            job="prometheus",
        ),
        Component(
            "collector",
            _vigil("collect", "--follow", "--metrics-port", str(p.collector)),
            p.collector,
            "/metrics",
            url_path="/metrics",
            job="collector",
        ),
        Component(
            "trainer",
            _vigil("retrain", "--follow", "--metrics-port", str(p.trainer)),
            p.trainer,
            "/metrics",
            url_path="/metrics",
            job="trainer",
        ),
    ]


def check_binaries(comps: list[Component]) -> None:
    """Missing Debian binaries are errors that name the package and the fix."""
    for comp in comps:
        if comp.package and shutil.which(comp.command[0]) is None:
            raise DependencyMissing(
                f"{comp.command[0]} not found: the Debian package {comp.package} is not installed",
                hint="run `make setup`",
            )


def select(settings: Settings, only: list[str] | None = None) -> list[Component]:
    """All components, or those named in ``only`` (in start order); an unknown name is a ConfigError."""
    comps = components(settings)
    unknown = sorted(set(only or []) - {c.name for c in comps})
    if unknown:
        raise ConfigError(
            f"unknown stack component {', '.join(unknown)}", hint=f"choose from {', '.join(c.name for c in comps)}"
        )
    return [c for c in comps if not only or c.name in only]


def resolve(settings: Settings, only: list[str] | None = None) -> Plan:
    """The components to run; a missing Debian binary is an error that names its package."""
    wanted = select(settings, only)
    check_binaries(wanted)
    return Plan(wanted)
