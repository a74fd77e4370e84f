"""Fault tests inject for real: they need root, stress-ng, iproute2, iptables and loop devices."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unavailable
from vigil.validation import procs
from vigil.validation.hostlock import host_lock
from vigil.validation.journal import CleanupJournal

TOOLS = ("stress-ng", "ip", "tc", "iptables", "losetup", "mkfs.ext4", "fallocate", "mount")


@pytest.fixture
def journal(vigil_home: Path) -> Iterator[CleanupJournal]:
    if os.geteuid() != 0:
        unavailable("fault injection needs root (namespaces, mounts, iptables)")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        unavailable(f"missing tools: {missing} (scripts/setup.sh installs them)")
    # Host-wide faults must not overlap a campaign (e.g. another checkout's `make test` on this host).
    with host_lock():
        yield CleanupJournal.for_home(vigil_home)


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    return [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(prefix)]  # fmt: skip


def loops_under(path: Path) -> list[str]:
    out = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(path.resolve()) in line]


def netns_exists(name: str) -> bool:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return any(line.split()[0] == name for line in out.splitlines() if line.strip())


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def live_fault_pids(entries: list) -> list[int]:
    """Processes still alive from the session/marker entries of a journal snapshot."""
    pids: list[int] = []
    for entry in entries:
        a = entry.action
        if a.get("kind") == "session":
            pids += procs.fault_pids(a.get("token", ""), int(a.get("sid") or 0), int(a.get("start") or 0))
    return pids


def assert_clean(home: Path, entries: list, netns: str = "", links: tuple[str, ...] = ()) -> None:
    assert live_fault_pids(entries) == []
    assert mounts_under(home) == []
    assert loops_under(home) == []
    assert list(home.rglob(".vigil-fill-*")) == []
    if netns:
        assert not netns_exists(netns)
    for link in links:
        assert not link_exists(link)
