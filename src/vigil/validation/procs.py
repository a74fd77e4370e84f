"""Process helpers for fault injection: spawn tagged process groups, find them again, kill them for sure.

A fault's processes are started in a new session and carry an environment marker
(``VIGIL_FAULT_TOKEN``) that every child inherits (stress-ng forks its workers). Cleanup finds them
by that marker in ``/proc/*/environ``, so the token can be journaled *before* the spawn, and workers
whose parent died are found as well. Pids are always paired with their kernel start time so a
recycled pid is never mistaken for ours.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from vigil.procfs import stat_fields

MARKER = "VIGIL_FAULT_TOKEN"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def start_time(pid: int) -> int | None:
    """Kernel start time of ``pid`` in clock ticks since boot, ``None`` if there is no such process."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(pid: int, start: int = 0) -> bool:
    """True when ``pid`` runs (not a zombie) and, if ``start`` is given, is the same process."""
    fields = stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return start == 0 or int(fields[19]) == start


def cpu_seconds(pid: int) -> float:
    """User + system CPU time consumed by ``pid`` so far (0 when it is gone)."""
    fields = stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def marked_pids(token: str) -> list[int]:
    """Live processes whose environment carries ``VIGIL_FAULT_TOKEN=token``."""
    needle = f"{MARKER}={token}".encode()
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            env = Path(entry.path, "environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0") and is_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def session_members(sid: int, min_start: int = 0) -> list[int]:
    """Live processes in session ``sid`` started no earlier than ``min_start`` (guards pid reuse)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields is None or fields[0] in ("Z", "X"):
            continue
        if int(fields[3]) == sid and int(fields[19]) >= min_start:
            found.append(int(entry.name))
    return found


def fault_pids(token: str = "", sid: int = 0, start: int = 0) -> list[int]:
    """Every live process of one injector.

    stress-ng rewrites its workers' environment when it renames them, so the marker finds only the
    session leader; the workers are found through the session the leader created.
    """
    me = os.getpid()
    leaders = set(marked_pids(token)) if token else set()
    if sid > 0:
        leaders.add(sid)
    pids: set[int] = set()
    for leader in leaders:
        leader_start = start if leader == sid and start else (start_time(leader) or 0)
        pids.update(session_members(leader, leader_start))
    pids.update(marked_pids(token) if token else [])
    pids.discard(me)
    return sorted(pids)


def _reap(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def kill_session(sid: int = 0, start: int = 0, token: str = "", grace_s: float = 2.0) -> int:
    """SIGTERM an injector's processes, SIGKILL what is left after ``grace_s``; returns how many there were."""
    if sid > 0 and start and start_time(sid) not in (None, start):
        sid = 0  # the leader's pid now belongs to someone else; rely on the marker and the members' start
    pids = fault_pids(token, sid, start)
    if not pids:
        return 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _reap(pids)
        if not any(is_alive(p) for p in pids):
            return len(pids)
        time.sleep(0.05)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = [p for p in pids if is_alive(p)] + fault_pids(token, sid, start)
        if not left:
            break
        for pid in set(left):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        _reap(pids)
    return len(pids)


def new_token() -> str:
    return uuid.uuid4().hex[:16]


def spawn(argv: Sequence[str], token: str, *, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.Popen:
    """Start ``argv`` in its own session with the cleanup marker in its environment."""
    full_env = dict(os.environ if env is None else env)
    full_env[MARKER] = token
    return subprocess.Popen(  # noqa: S603 - argv is built by the fault library, never from user text
        list(argv),
        env=full_env,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        **kwargs,  # type: ignore[arg-type]
    )
