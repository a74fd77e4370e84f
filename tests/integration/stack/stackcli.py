"""Drive a real local stack through the `vigil` CLI, on free ports under a temporary VIGIL_HOME.

Shared by tests/integration/stack and tests/e2e/test_stack*.py (fixtures there call ``stack_fixture``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from vigil.config import Ports
from vigil.stack import procs


@dataclass
class StackCLI:
    home: Path
    env: dict[str, str]
    ports: dict[str, int]

    def run(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "vigil.cli.main", *args],
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def status(self, via_cli: bool = False) -> dict[str, Any]:
        """The ``vigil status --json`` report; in-process unless ``via_cli`` (each CLI start costs ~1.5 s)."""
        if via_cli:
            return json.loads(self.run("status", "--json").stdout)
        from vigil.config import load_settings
        from vigil.stack.control import status

        return status(load_settings())

    def pids(self) -> dict[str, int]:
        return {c["name"]: c["pid"] for c in self.status()["components"]}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"


def distinct_free_ports(names: list[str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    while len(ports) < len(names):
        port = free_port()
        if port not in ports.values():
            ports[names[len(ports)]] = port
    return ports


def stack_fixture(vigil_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackCLI]:
    ports = distinct_free_ports(list(Ports.model_fields))
    for name, port in ports.items():
        monkeypatch.setenv(f"VIGIL_PORTS__{name.upper()}", str(port))
    monkeypatch.setenv("VIGIL_DEMO__BASE_RPS", "2")  # the machine's two cores are shared
    cli = StackCLI(vigil_home, dict(os.environ), ports)
    yield cli
    cli.run("down")
    # Whatever `down` missed would outlive the test; stop it and fail loudly.
    leftovers = [r for r in procs.all_records(vigil_home / "run") if procs.is_alive(r)]
    procs.terminate(leftovers, grace_s=5)
    assert not leftovers, f"vigil down left {leftovers}"
