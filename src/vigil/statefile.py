"""State files under ``$VIGIL_HOME``: written whole or not at all, and set aside when unreadable.

Serving keeps its restart state (alert queue, incidents, maintenance windows, chat log, detection
snapshot) in small files it rewrites often. A crash or a full disk in the middle of a write must
leave the previous file intact, and a file that cannot be read must not be overwritten by the next
save, so that whoever looks into it later still has the evidence.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["move_aside", "write_atomic"]


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
