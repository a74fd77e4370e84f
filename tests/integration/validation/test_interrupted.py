"""A run killed mid-fault leaves nothing behind: SIGINT/SIGTERM unwind in-process, SIGKILL via the journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.validation.conftest import (
    assert_clean,
    link_exists,
    live_fault_pids,
    mounts_under,
    netns_exists,
)
from vigil.validation.journal import CleanupJournal

pytestmark = pytest.mark.integration


def _lab_name(prefix: str) -> str:
    # Unique per test, so a namespace an earlier killed run left behind cannot collide (the host
    # interface "vh-<name>" must fit in 15 characters).
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _start(name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.validation.injector", name],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        pytest.fail(f"injector did not get ready: {line!r} {proc.communicate(timeout=10)[1][-2000:]}")
    return proc


def _assert_injected(home: Path, entries: list, netns: str, host_if: str) -> None:
    assert live_fault_pids(entries), "the stressor, lock holder and netdep processes should be running"
    assert mounts_under(home)
    assert netns_exists(netns) and link_exists(host_if)
    assert list((home / "small").glob(".vigil-fill-*"))


def test_sigkill_leaves_leftovers_that_the_cleanup_command_removes(journal: CleanupJournal, vigil_home: Path) -> None:
    name = _lab_name("k")
    proc = _start(name)
    entries = journal.open_entries(include_live=True)
    _assert_injected(vigil_home, entries, f"vigil-{name}", f"vh-{name}")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.communicate()
    # Nothing ran in the dead process: every resource is still there, only the journal knows it.
    _assert_injected(vigil_home, entries, f"vigil-{name}", f"vh-{name}")
    assert len(journal.open_entries()) == len(entries)

    out = subprocess.run(
        [sys.executable, "-m", "vigil.cli.main", "validate", "--cleanup"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"{len(entries)} leftover(s)" in out.stdout
    assert_clean(vigil_home, entries, netns=f"vigil-{name}", links=(f"vh-{name}",))
    assert journal.open_entries(include_live=True) == []
    assert not (vigil_home / ".small.img").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_cleans_up_in_process(journal: CleanupJournal, vigil_home: Path, sig: signal.Signals) -> None:
    name = _lab_name("i")
    proc = _start(name)
    entries = journal.open_entries(include_live=True)
    _assert_injected(vigil_home, entries, f"vigil-{name}", f"vh-{name}")
    proc.send_signal(sig)
    proc.wait(timeout=60)
    proc.communicate()
    assert_clean(vigil_home, entries, netns=f"vigil-{name}", links=(f"vh-{name}",))
    assert journal.open_entries(include_live=True) == []  # nothing was left for a later --cleanup
