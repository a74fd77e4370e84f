"""What Vigil said in chat, by incident: the console's incident page shows the messages an operator
was sent and the explanation each carried, not a fresh one computed when the page is opened.

Bounded (the newest ``max_incidents`` incidents, ``max_messages`` each) and kept in one JSON file
written atomically, so a restart keeps the record and a crash mid-write leaves the previous one.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from vigil.statefile import FormatCheck, check_json_format, move_aside, write_atomic

log = logging.getLogger(__name__)

FORMAT = 1


class ChatLog:
    def __init__(self, path: Path | None = None, *, max_incidents: int = 200, max_messages: int = 20) -> None:
        self.path = path
        self.max_incidents = max_incidents
        self.max_messages = max_messages
        self._by_key: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._restore()

    def record(
        self, key: str, *, at: float, title: str, body: str, delivered: bool | None,
        explanation: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """One message, under its incident id (or the entity, for an alert outside any incident)."""
        entry = {"at": at, "title": title, "body": body, "delivered": delivered, "explanation": explanation}
        with self._lock:
            messages = self._by_key.pop(key, [])
            messages = (messages + [entry])[-self.max_messages :]
            self._by_key[key] = messages
            while len(self._by_key) > self.max_incidents:
                self._by_key.popitem(last=False)
            state = json.dumps({"format": FORMAT, "messages": self._by_key}, separators=(",", ":"))
        self._save(state)

    def messages(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self._by_key.get(key, [])]

    def _save(self, state: str) -> None:
        if self.path is None:
            return
        try:
            write_atomic(self.path, state)
        except OSError as exc:  # a full disk costs the record of a restart, never a message
            log.error("cannot save the chat log to %s: %s", self.path, exc)

    def _restore(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        try:
            saved = json.loads(self.path.read_text())
            if not isinstance(saved, dict) or saved.get("format") != FORMAT:
                raise ValueError(f"not a chat log of format {FORMAT}")
            data = saved.get("messages")
            if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
                raise ValueError("not an object of message lists")
            restored = OrderedDict(
                (str(k), [m for m in v if isinstance(m, dict)][-self.max_messages :]) for k, v in data.items()
            )
        except (OSError, ValueError) as exc:
            log.error("cannot read the chat log %s (%s); moved to %s", self.path, exc, move_aside(self.path))
            return
        while len(restored) > self.max_incidents:
            restored.popitem(last=False)
        self._by_key = restored


def check_chat_log(path: Path) -> FormatCheck:
    """What this version does with the chat log at ``path`` (``vigil upgrade-check``)."""
    return check_json_format(
        "chat log", path, "format", FORMAT, consequence="The console no longer shows what chat was sent before."
    )
