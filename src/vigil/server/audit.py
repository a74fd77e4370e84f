"""A record of the model changes made through the API (promote, rollback): who, when, from what to
what. One JSON line per action, appended; the registry keeps the alias history, this adds the who."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_LINE = 4096


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of_home(cls, home: Path) -> AuditLog:
        return cls(home / "state" / "audit.jsonl")

    def record(self, action: str, **fields: Any) -> None:
        entry = json.dumps({"at": time.time(), "action": action, **fields}, default=str)[:MAX_LINE]
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with self.path.open("a") as fh:
                fh.write(entry + "\n")
        except OSError as exc:  # the action itself is done; losing its record must not undo it
            log.error("cannot record %s in %s: %s", action, self.path, exc)
        log.info("audit: %s", entry)

    def recent(self, n: int) -> list[dict[str, Any]]:
        """The newest ``n`` actions, newest first; unreadable lines are skipped."""
        try:
            with self.path.open() as fh:
                lines = deque(fh, maxlen=n)
        except OSError:
            return []
        out = []
        for line in reversed(lines):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out
