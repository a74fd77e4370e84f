"""Fixtures shared by every test area. Area-specific fixtures live in that area's own conftest.py."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = REPO_ROOT / "tests" / "data"
# Every test under these folders carries the folder's marker: `make test-fast` leaves them out by
# folder, not by each module remembering its own `pytestmark`.
MARKED_FOLDERS = {REPO_ROOT / "tests" / "integration": "integration", REPO_ROOT / "tests" / "e2e": "e2e"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for folder, marker in MARKED_FOLDERS.items():
            if folder in item.path.parents:
                item.add_marker(getattr(pytest.mark, marker))
    # `make test` hands modules to its parallel workers in collection order: the long end-to-end modules
    # (one shared live stack each) go first, then the other slow ones, so that the run does not end
    # waiting on a long module that started last.
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, item.get_closest_marker("e2e") is None))


# The test worker's priority as it started: see _runner_priority_kept.
RUNNER_NICE = os.getpriority(os.PRIO_PROCESS, 0)


@pytest.fixture(autouse=True)
def _runner_priority_kept() -> Iterator[None]:
    """Running ``vigil train`` in-process lowers the priority of the whole test worker (its ``--nice``),
    and every later test of that worker would then run at that priority: timings and nice values
    measured there lie. The test that did it (in a fixture of any scope, or in its body) fails instead,
    and the worker's priority is put back so that the tests after it are not affected."""

    def check() -> None:
        now = os.getpriority(os.PRIO_PROCESS, 0)
        if now != RUNNER_NICE:
            for tid in os.listdir("/proc/self/task"):
                with contextlib.suppress(OSError):  # a thread that ended, or no privilege to raise priority
                    os.setpriority(os.PRIO_PROCESS, int(tid), RUNNER_NICE)
            pytest.fail(f"the test worker's nice value went {RUNNER_NICE} -> {now} (in-process vigil train: --nice 0)")

    check()
    yield
    check()


def unavailable(reason: str) -> NoReturn:
    """A prerequisite (a Debian package, the shared data, root) is missing: the test is skipped when
    run by hand, and fails under `make test` (``VIGIL_TEST_STRICT=1``), whose set-up installs all of
    them, so a broken set-up or a component that no longer starts never passes as a skipped test."""
    if os.environ.get("VIGIL_TEST_STRICT") == "1":
        pytest.fail(f"{reason} (make test installs every prerequisite; a skip here would hide it)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout_s: float = 30.0, ok: Callable[[requests.Response], bool] | None = None) -> None:
    """Poll ``url`` until it answers (and ``ok`` accepts the response) or fail the test."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            resp = requests.get(url, timeout=2)
            if resp.status_code < 500 and (ok is None or ok(resp)):
                return
            last = resp.status_code
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.2)
    pytest.fail(f"{url} did not become ready in {timeout_s}s (last: {last})")


@pytest.fixture
def vigil_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty state directory; ``VIGIL_HOME`` points at it for the test."""
    home = tmp_path / "vigil-home"
    home.mkdir()
    monkeypatch.setenv("VIGIL_HOME", str(home))
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    # The stack's trainer retrains every few minutes by default; a test that wants it says so, the
    # rest must not have models change under them (or two cores spent on training).
    monkeypatch.setenv("VIGIL_RETRAIN_INTERVAL_S", "0")
    monkeypatch.setenv("VIGIL_DRIFT_CHECK_INTERVAL_S", "20")
    yield home


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real labelled datasets (../shared/data); tests needing the full sets cannot run without them."""
    path = Path(os.environ.get("VIGIL_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    if not path.exists():
        unavailable(f"real datasets not found at {path} (set VIGIL_DATA_DIR)")
    return path
