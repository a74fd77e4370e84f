"""Pid files that identify a process exactly, so ``vigil down`` never signals a stranger.

A pid alone is not an identity: after a crash the number can be reused by an unrelated process. Each
record also stores the kernel's start time of the process (``/proc/<pid>/stat`` field 22), and a
record only counts as alive while both match.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vigil.procfs import stat_fields

SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class PidRecord:
    name: str
    pid: int
    starttime: int
    cmd: list[str] = field(default_factory=list)
    started_at: float = 0.0


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, starttime) of a process, or None if there is none with that pid."""
    fields = stat_fields(pid)
    return (fields[0], int(fields[19])) if fields else None


def record_for(name: str, pid: int, cmd: list[str] | None = None) -> PidRecord:
    stat = proc_stat(pid)
    if stat is None:
        raise ProcessLookupError(f"process {pid} ({name}) exited before it could be recorded")
    return PidRecord(name=name, pid=pid, starttime=stat[1], cmd=list(cmd or []), started_at=time.time())


def is_alive(rec: PidRecord) -> bool:
    stat = proc_stat(rec.pid)
    # A zombie has finished; it only waits for a parent that may be gone to reap it.
    return stat is not None and stat[1] == rec.starttime and stat[0] != "Z"


def pidfile(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.pid"


def write_record(run_dir: Path, rec: PidRecord) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = pidfile(run_dir, rec.name)
    tmp = path.with_suffix(".pid.tmp")
    tmp.write_text(json.dumps(asdict(rec)))
    tmp.replace(path)  # atomic, so a reader never sees half a record


def read_record(run_dir: Path, name: str) -> PidRecord | None:
    try:
        data = json.loads(pidfile(run_dir, name).read_text())
        return PidRecord(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return None


def remove_record(run_dir: Path, name: str) -> None:
    pidfile(run_dir, name).unlink(missing_ok=True)


def all_records(run_dir: Path) -> list[PidRecord]:
    if not run_dir.exists():
        return []
    records = [read_record(run_dir, p.stem) for p in sorted(run_dir.glob("*.pid"))]
    return [r for r in records if r is not None]


def signal_record(rec: PidRecord, sig: int) -> None:
    """Signal the process and, when it leads its own group (we start children that way), the group."""
    if not is_alive(rec):
        return
    try:
        if os.getpgid(rec.pid) == rec.pid:
            os.killpg(rec.pid, sig)
        else:
            os.kill(rec.pid, sig)
    except ProcessLookupError:
        pass


def kill_orphans(pgid: int) -> None:
    """SIGKILL what is left of a dead child's process group.

    A gunicorn master killed with SIGKILL leaves its worker holding the listening socket, so the
    replacement could never bind. The kernel does not reuse a pid while it names a live group, so the
    group id of a child we started is still ours to kill.
    """
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def wait_dead(records: list[PidRecord], timeout_s: float) -> list[PidRecord]:
    """Wait until every record is dead; return those still alive at the deadline."""
    deadline = time.monotonic() + timeout_s
    alive = [r for r in records if is_alive(r)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [r for r in alive if is_alive(r)]
    return alive


def terminate(records: list[PidRecord], grace_s: float = 10.0) -> list[PidRecord]:
    """SIGTERM all at once (shutdown takes as long as the slowest, not the sum), then SIGKILL stragglers.

    Returns the stragglers that needed SIGKILL.
    """
    for rec in records:
        signal_record(rec, signal.SIGTERM)
    stragglers = wait_dead(records, grace_s)
    for rec in stragglers:
        signal_record(rec, signal.SIGKILL)
    wait_dead(records, 5.0)
    return stragglers
