"""Keeps the local stack's children running; ``python -m vigil.stack.supervisor`` is the headless form.

Restart policy follows systemd's ``Restart=on-failure``: a child that exits non-zero or dies from an
unclean signal (SIGKILL, SIGSEGV, ...) is restarted after an exponential backoff; one that exits 0 or
on SIGTERM/SIGINT/SIGHUP/SIGPIPE was stopped on purpose and stays down (that is how fault injection
takes a target away) until ``vigil up`` asks the supervisor (SIGHUP) to start whatever is down.

Children run in their own sessions, so a Ctrl-C in the terminal reaches only the supervisor, which
then stops them in order, and a crashed supervisor leaves them running for ``vigil down`` to find
through their pid files. On start, the supervisor adopts children whose pid files are still alive
instead of starting second copies.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from vigil.config import Settings, load_settings, settings_overrides
from vigil.stack import procs
from vigil.stack.health import port_free
from vigil.stack.registry import Component, Plan

CLEAN_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE}
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0  # running this long forgives earlier failures
START_MARKER = "--- vigil: starting"  # the line the supervisor writes into a component's log at each start


def plan_path(settings: Settings) -> Path:
    return settings.run_dir / "plan.json"


def state_path(settings: Settings) -> Path:
    return settings.run_dir / "state.json"


def load_plan(settings: Settings) -> Plan | None:
    try:
        return Plan.from_dict(json.loads(plan_path(settings).read_text()))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def child_env(settings: Settings) -> dict[str, str]:
    """The environment for children: the effective settings, so ``vigil`` children agree with ``up``
    (including what its caller changed in code, such as a validation campaign's wiring)."""
    env = {**os.environ, **settings_overrides(settings)}
    env["VIGIL_HOME"] = str(settings.home)
    env["VIGIL_BIND_HOST"] = settings.bind_host
    env["VIGIL_DATA_DIR"] = str(settings.data_dir)
    for name, value in settings.ports.model_dump().items():
        env[f"VIGIL_PORTS__{name.upper()}"] = str(value)
    for name, value in settings.demo.model_dump().items():
        env[f"VIGIL_DEMO__{name.upper()}"] = str(value)
    env["PYTHONUNBUFFERED"] = "1"  # logs reach the file as they happen, not at exit
    return env


def should_restart(returncode: int | None) -> bool:
    """on-failure semantics; None means an adopted child vanished for an unknown reason."""
    if returncode is None:
        return True
    if returncode < 0:
        return signal.Signals(-returncode) not in CLEAN_SIGNALS
    return returncode != 0


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "exited (adopted, status unknown)"
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


@dataclass
class Child:
    comp: Component
    proc: subprocess.Popen[bytes] | None = None
    rec: procs.PidRecord | None = None
    state: str = "pending"  # running | backoff | stopped | failed
    restarts: int = 0
    failures: int = 0
    next_start: float = 0.0
    started: float = 0.0
    last_exit: str = ""

    @property
    def pid(self) -> int | None:
        return self.rec.pid if self.rec and self.state == "running" else None


class Supervisor:
    def __init__(self, settings: Settings, plan: Plan, log: logging.Logger | None = None) -> None:
        self.settings = settings
        self.plan = plan
        self.children = [Child(c) for c in plan.components]
        self.env = child_env(settings)
        self.log = log or logging.getLogger("vigil.stack")
        self._reconcile = threading.Event()
        self._lock_fd: IO[str] | None = None

    # -- ownership -------------------------------------------------------------------------------------
    def acquire(self) -> bool:
        """Take the stack's lock; False if another supervisor holds it (the kernel drops it if we die)."""
        run = self.settings.run_dir
        run.mkdir(parents=True, exist_ok=True)
        fd = open(run / "supervisor.lock", "w")  # noqa: SIM115 - held for the supervisor's lifetime
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fd.close()
            return False
        self._lock_fd = fd
        procs.write_record(run, procs.record_for(procs.SUPERVISOR, os.getpid(), sys.argv))
        return True

    def release(self) -> None:
        procs.remove_record(self.settings.run_dir, procs.SUPERVISOR)
        state_path(self.settings).unlink(missing_ok=True)
        if self._lock_fd is not None:
            self._lock_fd.close()
            self._lock_fd = None

    def request_reconcile(self) -> None:
        self._reconcile.set()

    # -- children --------------------------------------------------------------------------------------
    def _start(self, child: Child) -> None:
        comp, run = child.comp, self.settings.run_dir
        existing = procs.read_record(run, comp.name)
        if existing and procs.is_alive(existing):
            child.proc, child.rec, child.state, child.started = None, existing, "running", time.monotonic()
            self.log.info("%s: adopted running pid %d", comp.name, existing.pid)
            return
        procs.remove_record(run, comp.name)
        if not port_free(self.settings.bind_host, comp.port):
            self._failed(child, f"port {comp.port} is in use by another process")
            return
        log_path = self.settings.logs_dir / f"{comp.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            out.write(f"{START_MARKER} {comp.name} at {time.strftime('%FT%T%z')}: {comp.command}\n".encode())
            out.flush()
            try:
                proc = subprocess.Popen(
                    comp.command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.settings.home,
                    start_new_session=True,
                )
            except OSError as exc:
                self._failed(child, f"cannot execute {comp.command[0]}: {exc.strerror}")
                return
        try:
            rec = procs.record_for(comp.name, proc.pid, comp.command)
        except ProcessLookupError:
            rec = procs.PidRecord(comp.name, proc.pid, -1, comp.command, time.time())
        procs.write_record(run, rec)
        child.proc, child.rec, child.state, child.started = proc, rec, "running", time.monotonic()
        self.log.info("%s: started pid %d", comp.name, proc.pid)

    def _failed(self, child: Child, why: str) -> None:
        child.failures += 1
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (child.failures - 1))
        child.state, child.next_start, child.last_exit = "backoff", time.monotonic() + delay, why
        self.log.warning("%s: %s; restarting in %.0fs", child.comp.name, why, delay)

    def _poll(self, child: Child) -> tuple[bool, int | None]:
        """(exited, status); the status of an adopted child is unknown (None): it is not ours to wait for."""
        if child.proc is not None:
            rc = child.proc.poll()
            return rc is not None, rc
        return child.rec is None or not procs.is_alive(child.rec), None

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)
        self.write_state()

    def tick(self) -> None:
        now = time.monotonic()
        if self._reconcile.is_set():
            self._reconcile.clear()
            for child in self.children:
                if child.state in ("stopped", "backoff", "failed"):
                    child.failures, child.next_start = 0, now
                    child.state = "backoff"
        changed = False
        for child in self.children:
            if child.state == "running":
                if child.failures and now - child.started > STABLE_AFTER_S:
                    child.failures = 0
                exited, rc = self._poll(child)
                if not exited:
                    continue
                changed = True
                procs.remove_record(self.settings.run_dir, child.comp.name)
                if child.rec is not None:
                    procs.kill_orphans(child.rec.pid)
                why = describe_exit(rc)
                if should_restart(rc):
                    self._failed(child, why)
                else:
                    child.state, child.last_exit = "stopped", why
                    self.log.warning("%s: %s; left stopped (clean exit), `vigil up` starts it", child.comp.name, why)
            elif child.state == "backoff" and now >= child.next_start:
                changed = True
                child.restarts += 1
                self._start(child)
        if changed:
            self.write_state()

    def stop_all(self, grace_s: float = 10.0) -> None:
        live = [c for c in self.children if c.state == "running" and c.rec is not None]
        if live:
            self.log.info("stopping %s", ", ".join(c.comp.name for c in live))
        killed = procs.terminate([c.rec for c in reversed(live) if c.rec is not None], grace_s)
        for rec in killed:
            self.log.warning("%s: did not stop within %.0fs of SIGTERM; killed", rec.name, grace_s)
        for child in self.children:
            if child.proc is not None:
                try:
                    child.proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    pass
            procs.remove_record(self.settings.run_dir, child.comp.name)
            child.state = "stopped"
        self.write_state()

    def write_state(self) -> None:
        state = {
            c.comp.name: {"state": c.state, "restarts": c.restarts, "last_exit": c.last_exit} for c in self.children
        }
        path = state_path(self.settings)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(path)

    def run(self, stop: threading.Event, on_tick: Callable[[Supervisor], None] | None = None) -> None:
        """Supervise until ``stop`` is set, then stop every child."""
        try:
            while not stop.is_set():
                self.tick()
                if on_tick is not None:
                    on_tick(self)
                stop.wait(0.5)
        finally:
            self.stop_all()


def main() -> None:
    """Headless supervisor that ``vigil up`` starts in the background; reads the plan ``up`` wrote."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s supervisor %(levelname)s %(message)s", stream=sys.stderr
    )
    log = logging.getLogger("vigil.stack")
    settings = load_settings()
    plan = load_plan(settings)
    if plan is None:
        log.error("no plan at %s; start the stack with `vigil up`", plan_path(settings))
        sys.exit(2)
    sup = Supervisor(settings, plan, log)
    if not sup.acquire():
        log.error("another supervisor already runs this stack (%s)", settings.run_dir)
        sys.exit(1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: sup.request_reconcile())
    try:
        sup.start_all()
        sup.run(stop)
    finally:
        sup.release()
        log.info("supervisor exits")


if __name__ == "__main__":
    main()
