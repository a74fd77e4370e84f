"""Maintenance an operator declares at run time (``POST /v1/maintenance``, ``vigil maintenance --add``),
beside what ``vigil.yml`` declares: while a window lasts its entities' alarms page nobody and open
no incident, and the retrainer learns nothing from it (:mod:`vigil.training.labels`).

The windows are kept in ``$VIGIL_HOME/state/maintenance.json`` so a restart in the middle of a
deploy does not start paging. A window ended early keeps its real span (it is still a period the
models must not learn from); windows that ended longer ago than ``keep_s`` are dropped, and at most
``max_windows`` are kept, so an API client in a loop cannot grow the file without bound.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from vigil.config import MaintenanceWindow
from vigil.errors import BadRequest, NotFound
from vigil.statefile import MIGRATE, READ, START_AFRESH, FormatCheck, move_aside, write_atomic

log = logging.getLogger(__name__)

MAX_WINDOWS = 1000
MAX_DURATION_S = 7 * 86400  # as long as a silence may last (vigil.chatops.commands.MAX_SILENCE_S)
KEEP_S = 35 * 86400  # longer than any retraining window looks back
_WHEN = TypeAdapter(datetime)

# Format 1 is {"format": 1, "windows": [...]}; the bare list written before it (format 0) is read and
# rewritten as format 1 by the next save.
FORMAT = 1


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


class MaintenanceBook:
    """The declared windows (``vigil.yml``, read-only here) and the ones added at run time."""

    def __init__(
        self,
        declared: Sequence[MaintenanceWindow] = (),
        path: Path | None = None,
        *,
        max_windows: int = MAX_WINDOWS,
        keep_s: float = KEEP_S,
    ) -> None:
        self.declared = list(declared)
        self.path = path
        self.max_windows = max_windows
        self.keep_s = keep_s
        self._added: dict[str, tuple[MaintenanceWindow, dict[str, Any]]] = {}  # id -> (window, who and when)
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        if path is not None:
            self._restore(path)

    def covers(self, entity: str, t: float) -> bool:
        if any(w.covers(entity, t) for w in self.declared):
            return True
        with self._lock:
            return any(w.covers(entity, t) for w, _ in self._added.values())

    def add(self, body: Mapping[str, Any], *, now: float | None = None) -> dict[str, Any]:
        """A window from an API request: ``{"entities": [...], "start": ISO (default now), "end": ISO
        or "duration_s": seconds, "reason": "...", "by": "..."}``."""
        now = time.time() if now is None else now
        if not isinstance(body, Mapping):
            raise BadRequest('send JSON {"entities": [...], "duration_s": 1800, "reason": "...", "by": "..."}')
        unknown = set(body) - {"entities", "start", "end", "duration_s", "reason", "by"}
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(sorted(map(str, unknown)))[:200]}")
        duration = body.get("duration_s")
        if ("end" in body) == (duration is not None):
            raise BadRequest('give either "end" (ISO 8601 with a timezone) or "duration_s"')
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 < duration < math.inf
        ):
            raise BadRequest('"duration_s" must be a positive number of seconds')
        fields = {key: body[key] for key in ("entities", "reason", "end") if key in body}
        try:
            start = _WHEN.validate_python(_iso(now) if body.get("start") is None else body["start"])
            if duration is not None:
                fields["end"] = datetime.fromtimestamp(start.timestamp() + min(duration, 2 * MAX_DURATION_S), UTC)
            window = MaintenanceWindow.model_validate({"start": start, **fields})
        except (ValueError, OverflowError) as exc:  # pydantic's ValidationError is a ValueError
            if not isinstance(exc, ValidationError):
                raise BadRequest("a maintenance window's times must lie within the calendar") from None
            reason = str(exc.errors()[0].get("msg", exc)).removeprefix("Value error, ")
            raise BadRequest(f"not a maintenance window: {reason}"[:300]) from None
        if window.end.timestamp() - window.start.timestamp() > MAX_DURATION_S:
            raise BadRequest("a maintenance window lasts at most 7 days")
        if window.end.timestamp() <= now:
            raise BadRequest("that maintenance window is already over")
        if len(window.entities) > 1000 or any(not isinstance(e, str) or len(e) > 512 for e in window.entities):
            raise BadRequest("at most 1000 entities of at most 512 characters each")
        if len(window.reason) > 1000:
            raise BadRequest("the reason is at most 1000 characters")
        by = body.get("by", "")
        if not isinstance(by, str) or len(by) > 200:
            raise BadRequest('"by" is a string of at most 200 characters')
        window_id = secrets.token_hex(6)
        with self._lock:
            self._prune(now)
            if len(self._added) >= self.max_windows:
                raise BadRequest(f"{self.max_windows} maintenance windows are already declared; end some first")
            self._added[window_id] = (window, {"by": by, "created": now})
        self.save()
        return self._describe(window_id, window, {"by": by, "created": now}, now)

    def end(self, window_id: str, *, now: float | None = None) -> dict[str, Any]:
        """End a window now (one that has not begun is dropped); its real span stays on record."""
        now = time.time() if now is None else now
        with self._lock:
            if window_id not in self._added:
                raise NotFound(f"no maintenance window {window_id[:40]!r} added through the API")
            window, meta = self._added[window_id]
            cancelled = window.start.timestamp() >= now
            if cancelled:
                del self._added[window_id]
            else:
                end = datetime.fromtimestamp(min(now, window.end.timestamp()), UTC)
                window = window.model_copy(update={"end": end})
                self._added[window_id] = (window, meta)
                # A datetime holds whole microseconds: read "now" back from it, or the window just
                # ended could still look active by a rounding.
                now = max(now, end.timestamp())
        self.save()
        described = self._describe(window_id, window, meta, now)
        return described | {"state": "cancelled"} if cancelled else described

    def windows(self, *, now: float | None = None) -> list[dict[str, Any]]:
        """Every window, declared ones first, then the added ones by start."""
        now = time.time() if now is None else now
        out = [self._describe(None, w, {}, now) for w in self.declared]
        with self._lock:
            self._prune(now)
            added = sorted(self._added.items(), key=lambda kv: kv[1][0].start)
            out += [self._describe(i, w, meta, now) for i, (w, meta) in added]
        return out

    @staticmethod
    def _describe(window_id: str | None, w: MaintenanceWindow, meta: Mapping[str, Any], now: float) -> dict[str, Any]:
        start, end = w.start.timestamp(), w.end.timestamp()
        return {
            "id": window_id,
            "source": "api" if window_id else "vigil.yml",
            "start": start,
            "end": end,
            "entities": list(w.entities),
            "reason": w.reason,
            "state": "active" if start <= now < end else ("planned" if now < start else "over"),
            **({"by": meta.get("by", ""), "created": meta.get("created")} if window_id else {}),
        }

    def _prune(self, now: float) -> None:
        for window_id in [i for i, (w, _) in self._added.items() if w.end.timestamp() < now - self.keep_s]:
            del self._added[window_id]

    # ---- persistence -------------------------------------------------------------------------------

    def save(self) -> None:
        if self.path is None:
            return
        with self._save_lock:
            with self._lock:
                state = [{"id": i, "window": w.model_dump(mode="json"), **meta} for i, (w, meta) in self._added.items()]
            try:
                write_atomic(self.path, json.dumps({"format": FORMAT, "windows": state}, separators=(",", ":")))
            except OSError as exc:  # a full disk costs the windows of a restart, never serving
                log.error("cannot save the maintenance windows to %s: %s", self.path, exc)

    def _restore(self, path: Path) -> None:
        try:
            if not path.is_file():
                return
            self._added.update(_parse_saved(json.loads(path.read_text())))
        except (OSError, ValueError, TypeError, KeyError, ValidationError) as exc:
            self._added.clear()
            log.warning("maintenance windows %s cannot be read (%s); moved to %s", path, exc, move_aside(path))
            return
        log.info("restored %d maintenance windows from %s", len(self._added), path)


def _parse_saved(data: Any) -> dict[str, tuple[MaintenanceWindow, dict[str, Any]]]:
    """The windows of a saved file of format 1 or 0, by id; raises on anything else."""
    if isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("windows"), list):
        items = data["windows"]
    elif isinstance(data, list):  # format 0
        items = data
    else:
        raise ValueError(f"not maintenance windows of format {FORMAT} or 0")
    return {
        str(item["id"])[:40]: (
            MaintenanceWindow.model_validate(item["window"]),
            {"by": str(item.get("by", "")), "created": item.get("created")},
        )
        for item in items
    }


def check_maintenance_state(path: Path) -> FormatCheck:
    """What this version does with the saved maintenance windows at ``path`` (``vigil upgrade-check``)."""
    kind = "maintenance windows"
    try:
        data = json.loads(path.read_text())
        _parse_saved(data)
    except (OSError, ValueError, TypeError, KeyError, ValidationError) as exc:
        return FormatCheck(
            kind, path, "unreadable", START_AFRESH,
            f"{exc}; set aside as .corrupt. Windows added at run time are forgotten (vigil.yml's stay).",
        )  # fmt: skip
    if isinstance(data, list):
        return FormatCheck(kind, path, "0", MIGRATE, f"read, and rewritten as format {FORMAT} by the next change")
    return FormatCheck(kind, path, str(FORMAT), READ)
