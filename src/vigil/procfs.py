"""A process as the kernel describes it in ``/proc/<pid>/stat`` (base layer: imports nothing from vigil)."""

from __future__ import annotations

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
