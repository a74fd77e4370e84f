"""A process as the kernel describes it in ``/proc/<pid>/stat`` (base layer: imports nothing from vigil)."""

from __future__ import annotations

import os
from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` from field 3 (state) on, so index ``i`` is field ``i + 3``
    (19: start time in clock ticks, 11 and 12: user and system time); None when there is no such process.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) sits in parentheses and may itself contain spaces or parentheses.
    return raw[raw.rfind(")") + 2 :].split()


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (a gunicorn master and its workers), in MiB."""
    pids = {pid}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = stat_fields(int(stat.parent.name))
        if fields is not None and int(fields[1]) == pid:
            pids.add(int(stat.parent.name))
    total_kb = 0
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total_kb += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total_kb / 1024


def lower_priority(nice: int, *, whole_process: bool = False) -> int:
    """Raise the nice value of the calling thread (or of every thread of this process) by ``nice``,
    up to 19; threads started afterwards inherit it. Returns how many threads were changed.

    On Linux each thread has its own nice value and raising it needs no privilege. The kernel
    accounts niced work as CPU mode ``nice``, which the host's ``cpu_busy`` leaves out: Vigil's own
    training yields to the services it watches and does not read as their load. ``whole_process``
    also covers threads already started, such as a BLAS pool created when numpy was imported.
    """
    if nice <= 0 or not hasattr(os, "setpriority"):
        return 0
    if whole_process:
        try:
            tids = [int(t) for t in os.listdir("/proc/self/task")]
        except OSError:
            tids = [os.getpid()]
    else:
        import threading

        tids = [threading.get_native_id()]
    changed = 0
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
            changed += 1
        except OSError:  # a thread that ended meanwhile
            continue
    return changed
