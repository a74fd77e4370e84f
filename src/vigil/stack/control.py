"""What ``vigil up``, ``vigil down`` and ``vigil status`` do; the CLI only parses and prints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from vigil.config import Settings
from vigil.demo.loadgen import trace_roots
from vigil.demo.trace import find_trace
from vigil.errors import ConfigError, UpstreamUnavailable, VigilError
from vigil.stack import procs
from vigil.stack.health import ComponentStatus, check_all, ensure_port_free
from vigil.stack.registry import (
    Component,
    Plan,
    components,
    resolve,
    select,
)
from vigil.stack.render import render_all
from vigil.stack.supervisor import START_MARKER, Supervisor, child_env, load_plan, plan_path, state_path

FAIL_FAST_RESTARTS = 3  # restarts during `vigil up` after which waiting longer is pointless


def supervisor_record(settings: Settings) -> procs.PidRecord | None:
    rec = procs.read_record(settings.run_dir, procs.SUPERVISOR)
    return rec if rec is not None and procs.is_alive(rec) else None


def component_pid(settings: Settings, name: str) -> int | None:
    """The live pid of a stack component (what fault injection kills), or None while it is down."""
    rec = procs.read_record(settings.run_dir, name)
    return rec.pid if rec is not None and procs.is_alive(rec) else None


def _rendered(settings: Settings) -> dict[str, bytes]:
    etc = settings.home / "etc"
    return {str(p.relative_to(etc)): p.read_bytes() for p in sorted(etc.rglob("*")) if p.is_file()}


def reload(settings: Settings, plan: Plan, changed: set[str]) -> None:
    """Ask the running Prometheus and/or Alertmanager to re-read their config files, if they changed.

    Only on change: a reloaded Prometheus re-discovers its Alertmanagers, and notifications sent in
    that moment (e.g. an alert resolving) are dropped until the next resend a minute later.
    """
    wanted = set()
    if any(name == "prometheus.yml" or name.startswith("rules/") for name in changed):
        wanted.add("prometheus")
    if "alertmanager.yml" in changed:
        wanted.add("alertmanager")
    for comp in plan.components:
        if comp.name in wanted and component_pid(settings, comp.name):
            try:
                requests.post(f"http://{settings.bind_host}:{comp.port}/-/reload", timeout=10)
            except requests.RequestException:
                pass  # a component that does not answer is the health check's to report


def prepare(settings: Settings, only: list[str] | None = None) -> Plan:
    """Everything that can fail with a readable error, done before any process starts."""
    for path in (settings.home, settings.run_dir, settings.logs_dir, settings.demo_db_path.parent):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {path}: {exc.strerror}", hint="check VIGIL_HOME, demo.db_path") from None

    def check_ports(comps: list[Component]) -> None:
        for comp in comps:
            if component_pid(settings, comp.name) is None:  # a live one is adopted, its port rightly taken
                ensure_port_free(comp, settings.bind_host)

    plan = resolve(settings, only)
    check_ports(plan.components)
    if any(c.name == "loadgen" for c in plan.components):
        find_trace(trace_roots(settings))  # else it would crash-loop until `up` times out
    render_all(settings, plan)
    # mtail only tails files that exist when it starts.
    settings.demo_access_log.touch()
    plan_path(settings).write_text(json.dumps(plan.to_dict(), indent=2))
    return plan


def _supervisor_state(settings: Settings) -> dict[str, Any]:
    """The supervisor's own view per component (state, restarts, last_exit); empty before it wrote one."""
    try:
        return dict(json.loads(state_path(settings).read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def status(settings: Settings) -> dict[str, Any]:
    """``{"components": [{"name", "pid", "url", "healthy", ...}], "supervisor": {...}}``."""
    plan = load_plan(settings) or Plan(components(settings))
    host = settings.bind_host
    health = check_all(plan.components, host)
    sup = supervisor_record(settings)
    state = _supervisor_state(settings) if sup is not None else {}
    rows = []
    for comp in plan.components:
        rec = procs.read_record(settings.run_dir, comp.name)
        pid = rec.pid if rec is not None and procs.is_alive(rec) else None
        extra = state.get(comp.name, {})
        row = ComponentStatus(
            name=comp.name,
            pid=pid,
            url=comp.url(host),
            # Something else answering on our port is not our component being healthy.
            healthy=bool(pid and health[comp.name]),
            log=str(settings.logs_dir / f"{comp.name}.log"),
            state=extra.get("state", "running" if pid else "stopped"),
            restarts=int(extra.get("restarts", 0)),
            last_exit=str(extra.get("last_exit", "")),
        )
        rows.append(row.__dict__)
    return {
        "components": rows,
        "supervisor": {"pid": sup.pid if sup else None, "running": sup is not None},
    }


def wait_healthy(
    settings: Settings,
    timeout_s: float,
    supervisor: subprocess.Popen[bytes] | None = None,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        report = status(settings)
        # Adopted children are healthy before the new supervisor has even taken over; wait for it too.
        if report["components"] and all(c["healthy"] for c in report["components"]) and report["supervisor"]["running"]:
            return report
        if supervisor is not None:
            if supervisor.poll() is not None:
                raise VigilError(
                    f"the stack supervisor exited during start-up: {_last_line(settings.logs_dir / 'supervisor.log')}",
                    hint=f"see {settings.logs_dir / 'supervisor.log'}",
                )
            # On a fresh start nothing was stopped on purpose: a clean exit or a crash loop will not heal
            # by waiting out the timeout, so say which component and what its log last said.
            for name, seen in _supervisor_state(settings).items():
                if seen.get("state") == "stopped" or int(seen.get("restarts", 0)) >= FAIL_FAST_RESTARTS:
                    log = settings.logs_dir / f"{name}.log"
                    # Past its restarts it may already be running its next attempt, whose first lines say
                    # nothing yet: the last finished attempt's log is the one that explains the exit.
                    ended = _last_line(log, attempts_back=1 if seen.get("state") == "running" else 0)
                    raise VigilError(
                        f"{name} {seen.get('last_exit') or 'exited'} during start-up: {ended}",
                        hint=f"see {log}; `vigil down` stops the rest",
                    )
        if time.monotonic() >= deadline:
            bad = [c for c in report["components"] if not c["healthy"]]
            names = ", ".join(f"{c['name']} ({c['log']})" for c in bad)
            raise UpstreamUnavailable(
                f"stack not healthy after {timeout_s:.0f}s: {names}",
                hint="`vigil status` shows progress, `vigil down` stops it",
            )
        time.sleep(0.5)


def _last_line(log: Path, attempts_back: int = 0) -> str:
    """The component's own last words: the supervisor's start markers say nothing about why it failed.

    ``attempts_back`` counts starts back from the newest (0: the current or last attempt)."""
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "no log"
    starts = [i for i, ln in enumerate(lines) if ln.startswith(START_MARKER)]
    if attempts_back and len(starts) > attempts_back:
        lines = lines[: starts[-attempts_back]]
    own = [ln for ln in lines if ln.strip() and not ln.startswith(START_MARKER)]
    return own[-1][-300:] if own else "no log"


def up(settings: Settings, timeout_s: float = 90.0, only: list[str] | None = None) -> tuple[bool, dict[str, Any]]:
    """Start the stack (or the components in ``only``) in the background, wait until healthy.

    Returns (already_running, status). A running stack is never extended or duplicated: it only gets
    whatever of its own components is down started again.
    """
    select(settings, only)  # unknown names fail before anything else
    sup = supervisor_record(settings)
    if sup is not None:
        plan = load_plan(settings)
        missing = sorted(set(only or []) - {c.name for c in plan.components}) if plan else []
        if missing:
            raise ConfigError(
                f"the running stack has no {', '.join(missing)}", hint="`vigil down`, then `vigil up` with it"
            )
        # Already supervised: only ask it to start whatever is down, never a second copy, and pick up
        # rule files added to deploy/ since (Prometheus and Alertmanager reload in place).
        if plan is not None:
            before = _rendered(settings)
            render_all(settings, plan)
            after = _rendered(settings)
            reload(settings, plan, {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)})
        os.kill(sup.pid, signal.SIGHUP)
        return True, wait_healthy(settings, timeout_s)
    prepare(settings, only)
    state_path(settings).unlink(missing_ok=True)  # a crashed supervisor's view must not fail the new start
    with open(settings.logs_dir / "supervisor.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vigil.stack.supervisor"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(settings),
            cwd=settings.home,
            start_new_session=True,
        )
    return False, wait_healthy(settings, timeout_s, supervisor=proc)


def run_foreground(
    settings: Settings, on_tick: Callable[[Supervisor], None] | None = None, only: list[str] | None = None
) -> None:
    """Supervise in this process until Ctrl-C or SIGTERM, then stop everything."""
    import logging

    if supervisor_record(settings) is not None:
        raise VigilError("the stack is already running in the background", hint="`vigil down` first, or `vigil status`")
    plan = prepare(settings, only)
    log = logging.getLogger("vigil.stack.foreground")
    log.propagate = False  # the live table owns the terminal; messages go to the log file only
    log.setLevel(logging.INFO)
    handler = logging.FileHandler(settings.logs_dir / "supervisor.log")
    handler.setFormatter(logging.Formatter("%(asctime)s supervisor %(levelname)s %(message)s"))
    log.handlers = [handler]
    sup = Supervisor(settings, plan, log)
    if not sup.acquire():
        raise VigilError("another supervisor already runs this stack", hint="`vigil status`")
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C is the documented way out, so it is handled here even when this process inherited
    # SIGINT as ignored (started from a non-interactive shell's background job, as CI runners do).
    previous_int = signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: sup.request_reconcile())
    try:
        sup.start_all()
        sup.run(stop, on_tick)
    except KeyboardInterrupt:
        sup.stop_all()
    finally:
        sup.release()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def down(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Stop exactly the processes this stack started (found through pid files); their names."""
    run = settings.run_dir
    stopped: list[str] = []
    sup = supervisor_record(settings)
    before = {r.name for r in procs.all_records(run) if r.name != procs.SUPERVISOR and procs.is_alive(r)}
    if sup is not None:
        procs.signal_record(sup, signal.SIGTERM)
        if procs.wait_dead([sup], timeout_s):
            procs.signal_record(sup, signal.SIGKILL)  # stuck: take the children down directly below
            procs.wait_dead([sup], 5.0)
        stopped.append(procs.SUPERVISOR)
    leftovers = [r for r in procs.all_records(run) if r.name != procs.SUPERVISOR]
    procs.terminate([r for r in leftovers if procs.is_alive(r)])
    for rec in procs.all_records(run):
        if not procs.is_alive(rec):
            procs.remove_record(run, rec.name)
    state_path(settings).unlink(missing_ok=True)
    return stopped + sorted(before)
