"""Whether each component answers: the one definition of "healthy" used by up, status and the TUI."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from vigil.errors import PortInUse
from vigil.stack.registry import Component


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    try:
        return 200 <= requests.get(url, timeout=timeout_s).status_code < 300
    except requests.RequestException:
        return False


def check_all(components: list[Component], host: str, timeout_s: float = 1.0) -> dict[str, bool]:
    if not components:
        return {}
    with ThreadPoolExecutor(max_workers=len(components)) as pool:
        results = pool.map(lambda c: http_ok(c.health_url(host), timeout_s), components)
        return dict(zip([c.name for c in components], results, strict=True))


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        # Servers set SO_REUSEADDR, so a port with only TIME_WAIT leftovers is free for them too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ensure_port_free(component: Component, host: str) -> None:
    if not port_free(host, component.port):
        raise PortInUse(
            f"port {host}:{component.port} for {component.name} is already in use by another process",
            hint=f"stop it or set VIGIL_PORTS__{component.name.upper()} (ports.{component.name} in vigil.yml)",
        )


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    url: str
    healthy: bool
    log: str
    state: str = ""
    restarts: int = 0
    last_exit: str = ""
