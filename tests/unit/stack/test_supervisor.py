"""The supervisor's restart policy and adoption, on real (tiny) child processes."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from tests.conftest import free_port
from vigil.config import load_settings
from vigil.stack import procs
from vigil.stack.health import http_ok
from vigil.stack.registry import Component, Plan
from vigil.stack.supervisor import Supervisor, child_env, should_restart


@pytest.mark.parametrize(
    ("rc", "restart"),
    [(0, False), (1, True), (-signal.SIGKILL, True), (-signal.SIGSEGV, True), (-signal.SIGTERM, False), (None, True)],
)
def test_restart_policy_is_on_failure(rc, restart):
    assert should_restart(rc) is restart


@pytest.fixture
def web(vigil_home):
    port = free_port()
    comp = Component("web", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)], port, "/")
    settings = load_settings()
    sups: list[Supervisor] = []

    def make() -> Supervisor:
        sup = Supervisor(settings, Plan([comp]))
        sups.append(sup)
        return sup

    yield make, comp
    for sup in sups:
        sup.stop_all(grace_s=2)
        sup.release()


def _until(sup: Supervisor, pred, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sup.tick()
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout_s}s; child state {sup.children[0].state}")


def test_killed_child_is_restarted_terminated_child_stays_down_until_reconcile(web):
    make, comp = web
    sup = make()
    assert sup.acquire()
    sup.start_all()
    child = sup.children[0]
    url = comp.health_url("127.0.0.1")
    _until(sup, lambda: http_ok(url))
    first = child.pid

    os.kill(first, signal.SIGKILL)
    _until(sup, lambda: child.pid not in (None, first) and http_ok(url))
    assert child.restarts == 1
    assert procs.read_record(sup.settings.run_dir, "web").pid == child.pid

    os.kill(child.pid, signal.SIGTERM)
    _until(sup, lambda: child.state == "stopped")
    time.sleep(1.5)  # longer than the first backoff: a clean stop must not be restarted
    sup.tick()
    assert child.state == "stopped" and child.pid is None
    assert procs.read_record(sup.settings.run_dir, "web") is None

    sup.request_reconcile()  # what `vigil up` does to a running stack
    _until(sup, lambda: http_ok(url))


def test_second_supervisor_cannot_take_the_lock_and_a_successor_adopts(web):
    make, comp = web
    first = make()
    assert first.acquire()
    assert not make().acquire()
    first.start_all()
    pid = first.children[0].pid
    first.release()  # as if it crashed: the lock goes, the child stays

    successor = make()
    assert successor.acquire()
    successor.start_all()
    assert successor.children[0].pid == pid  # adopted, not started twice
    os.kill(pid, signal.SIGKILL)
    _until(successor, lambda: successor.children[0].pid not in (None, pid))  # adopted ones are supervised too


def test_children_get_the_effective_settings_even_from_keyword_overrides(vigil_home, monkeypatch):
    """What a caller changed in code (a validation campaign's wiring) reaches the stack's children;
    what it left alone they read from vigil.yml as the file is when they start."""
    settings = load_settings(
        ports={"prometheus": 29999, "demo_app": 29080}, demo={"base_rps": 1.5}, retrain_interval_s=604800.0,
        apprise_urls=["json://127.0.0.1:9/chat"], signals={"cpu_busy": {"min": 0.3}},
    )  # fmt: skip
    env = child_env(settings)
    for key, value in env.items():
        if key.startswith("VIGIL_"):
            monkeypatch.setenv(key, value)
    (settings.home / "vigil.yml").write_text("collect_interval_s: 7\n")  # edited after `vigil up`
    seen_by_child = load_settings()
    assert seen_by_child.ports == settings.ports
    assert seen_by_child.demo == settings.demo
    assert seen_by_child.home == settings.home
    assert seen_by_child.retrain_interval_s == 604800.0 and seen_by_child.apprise_urls == settings.apprise_urls
    assert seen_by_child.signals == settings.signals
    assert seen_by_child.collect_interval_s == 7


def test_a_crash_loop_is_explained_by_the_last_attempt_that_ended(tmp_path):
    """The demo app's log when `vigil up` gave up on it in a parallel test run: the supervisor had
    already started a fourth attempt, whose gunicorn had not yet written why it stopped."""
    from vigil.stack.control import _last_line
    from vigil.stack.supervisor import START_MARKER

    attempt = [
        f"{START_MARKER} demo_app at 2026-12-06T13:26:09+0000: gunicorn vigil.demo.app",
        "sqlite3.OperationalError: unable to open database file",
        "[2026-12-06 13:26:10 +0000] [24251] [ERROR] Worker (pid:24253) exited with code 3.",
        "[2026-12-06 13:26:10 +0000] [24251] [ERROR] Reason: Worker failed to boot.",
    ]
    log = tmp_path / "demo_app.log"
    log.write_text("\n".join(attempt * 3 + attempt[:3]) + "\n")
    assert _last_line(log, attempts_back=1).endswith("Reason: Worker failed to boot.")
    assert _last_line(log).endswith("exited with code 3.")
    assert _last_line(tmp_path / "missing.log") == "no log"
