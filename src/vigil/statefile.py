"""State files under ``$VIGIL_HOME``: written whole or not at all, and set aside when unreadable.

Serving keeps its restart state (alert queue, incidents, maintenance windows, chat log, detection
snapshot) in small files it rewrites often. A crash or a full disk in the middle of a write must
leave the previous file intact, and a file that cannot be read must not be overwritten by the next
save, so that whoever looks into it later still has the evidence. Each such file names its format,
and :class:`FormatCheck` is how its owner says what this version will do with one it finds.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MIGRATE", "READ", "REFUSE", "START_AFRESH", "FormatCheck", "check_json_format", "move_aside", "write_atomic",
]  # fmt: skip


def write_atomic(path: Path, data: str | bytes, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` in one rename (parents made with mode 0700).

    ``durable`` also fsyncs the file before the rename, for state whose loss costs more than a
    restart's worth (the alert queue). Raises :class:`OSError`, after removing the temporary file.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def move_aside(path: Path) -> str:
    """Rename an unreadable state file to ``<name>.corrupt``; says where it went, or why it did not."""
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
    except OSError as exc:
        return f"nowhere (cannot move it: {exc.strerror})"
    return str(aside)


# What this version of Vigil does with a persisted file it finds (`vigil upgrade-check`).
READ = "read"
MIGRATE = "migrate"
START_AFRESH = "start afresh"
REFUSE = "refuse"


@dataclass(frozen=True)
class FormatCheck:
    """One persisted file or store as this version of Vigil would treat it."""

    kind: str  # what it is, in words: "alert queue", "model bundle", ...
    path: Path
    found: str  # the format the file declares ("1", "vigil-bundle/1", "none")
    action: str  # READ, MIGRATE, START_AFRESH or REFUSE
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "path": str(self.path), "found": self.found, "action": self.action,
                "detail": self.detail}  # fmt: skip


def check_json_format(kind: str, path: Path, key: str, current: object, *, consequence: str = "") -> FormatCheck:
    """A JSON state file whose ``key`` names its format: read when it is ``current``; else (another
    format, unreadable) set aside at start-up to start afresh (``consequence`` says what is lost)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        detail = f"{exc}; set aside as .corrupt. {consequence}".strip()
        return FormatCheck(kind, path, "unreadable", START_AFRESH, detail)
    found = data.get(key) if isinstance(data, dict) else None
    if found == current:
        return FormatCheck(kind, path, str(found), READ)
    return FormatCheck(
        kind, path, "none" if found is None else str(found), START_AFRESH,
        f"this Vigil writes {key} {current}; set aside as .corrupt. {consequence}".strip(),
    )  # fmt: skip
