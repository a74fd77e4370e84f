"""Write-ahead cleanup journal for injected faults.

Every resource a fault creates (a stress process group, a mount, a loop device, a network namespace,
an iptables rule, a filler file) is journaled *before* it is created, as plain data describing how to
undo it. A fault that exits normally undoes its entries and marks them done. When the injecting
process dies without running its ``finally`` blocks (SIGKILL, OOM killer, power cut of the shell),
the entries stay open; :meth:`CleanupJournal.recover` — run at the start of every campaign and by
``vigil validate --cleanup`` — undoes the open entries of every owner that is no longer alive.

Undo actions are idempotent: undoing a resource that was never created (the process died between
journaling and creating it) fails quietly, which is why journaling first is safe.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.errors import ConfigError
from vigil.validation import procs

JOURNAL_NAME = "validation-journal.jsonl"


@dataclass
class UndoResult:
    entry_id: str
    action: dict[str, Any]
    ok: bool
    detail: str = ""


@dataclass
class _Entry:
    entry_id: str
    owner_pid: int
    owner_start: int
    fault: str
    action: dict[str, Any]
    seq: int = 0
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def journal_path(home: Path) -> Path:
    return home / "run" / JOURNAL_NAME


class CleanupJournal:
    """Append-only JSON-lines journal of undo actions, shared by every fault of every run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pid = os.getpid()
        self._start = procs.start_time(self._pid) or 0

    @classmethod
    def for_home(cls, home: Path) -> CleanupJournal:
        return cls(journal_path(home))

    @contextmanager
    def _locked(self) -> Iterator[Any]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with open(fd, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield fh
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._locked() as fh:
            fh.write(line)
            fh.flush()
            # The entry must be on disk before the resource exists, or a crash could leak it.
            os.fsync(fh.fileno())

    def add(self, fault: str, action: dict[str, Any]) -> str:
        """Journal one undo action (call *before* creating the resource); returns its id."""
        entry_id = uuid.uuid4().hex[:12]
        self._append(
            {
                "op": "add",
                "id": entry_id,
                "owner_pid": self._pid,
                "owner_start": self._start,
                "fault": fault,
                "action": action,
                "t": time.time(),
            }
        )
        return entry_id

    def update(self, entry_id: str, action: dict[str, Any]) -> None:
        """Replace an entry's action once more is known (e.g. the pid of the process just started)."""
        self._append({"op": "update", "id": entry_id, "action": action, "t": time.time()})

    def done(self, entry_id: str) -> None:
        self._append({"op": "done", "id": entry_id, "t": time.time()})

    def undo(self, entry_id: str, action: dict[str, Any]) -> UndoResult:
        """Undo one action now and mark it done (even when undo reports the resource already gone)."""
        ok, detail = run_undo(action)
        self.done(entry_id)
        return UndoResult(entry_id, action, ok, detail)

    def _entries(self) -> list[_Entry]:
        if not self.path.exists():
            return []
        entries: dict[str, _Entry] = {}
        with self._locked() as fh:
            fh.seek(0)
            lines = fh.readlines()
        for seq, line in enumerate(lines):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a crash mid-write: its resource was never created
            op, entry_id = rec.get("op"), rec.get("id", "")
            if op == "add":
                entries[entry_id] = _Entry(
                    entry_id, int(rec["owner_pid"]), int(rec["owner_start"]), rec["fault"], rec["action"], seq
                )
            elif op == "update" and entry_id in entries:
                entries[entry_id].action = rec["action"]
            elif op == "done" and entry_id in entries:
                entries[entry_id].done = True
        return sorted(entries.values(), key=lambda e: e.seq)

    def open_entries(self, *, include_live: bool = False) -> list[_Entry]:
        """Entries not undone yet; by default only those whose owner process is gone."""
        out = []
        for entry in self._entries():
            if entry.done:
                continue
            if not include_live and procs.is_alive(entry.owner_pid, entry.owner_start):
                continue
            out.append(entry)
        return out

    def check_trusted(self) -> None:
        """Refuse a journal another user could have written: its entries are carried out as commands
        (``kill``, ``umount``, ``ip netns delete``) with this process' privileges."""
        for path in (self.path.parent, self.path):
            if not path.exists():
                continue
            st = path.stat()
            if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise ConfigError(
                    f"refusing to replay the cleanup journal: {path} is owned by uid {st.st_uid} with mode "
                    f"{stat.filemode(st.st_mode)}",
                    hint=f"it must belong to uid {os.geteuid()} and be writable by it alone; inspect it, then fix it",
                )

    def recover(self, *, include_live: bool = False) -> list[UndoResult]:
        """Undo every open entry of dead owners, newest first (the reverse of creation)."""
        self.check_trusted()
        results = []
        for entry in reversed(self.open_entries(include_live=include_live)):
            results.append(self.undo(entry.entry_id, entry.action))
        self._compact()
        return results

    def _compact(self) -> None:
        # Keep the file small: drop the history of entries that are done.
        with self._locked() as fh:
            fh.seek(0)
            lines = fh.readlines()
            recs = []
            for line in lines:
                try:
                    recs.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
            done = {r["id"] for r in recs if r.get("op") == "done"}
            keep = [json.dumps(r, sort_keys=True) + "\n" for r in recs if r.get("id") not in done]
            fh.seek(0)
            fh.truncate()
            fh.writelines(keep)
            fh.flush()
            os.fsync(fh.fileno())


def run_undo(action: dict[str, Any]) -> tuple[bool, str]:
    """Carry out one undo action; ``(ok, detail)``. Never raises for a resource that is already gone."""
    kind = action.get("kind")
    if kind == "session":
        killed = procs.kill_session(
            int(action.get("sid") or 0), int(action.get("start", 0)), str(action.get("token", ""))
        )
        return True, f"killed {killed} process(es)"
    if kind == "argv":
        argv = [str(a) for a in action["argv"]]
        env = {**os.environ, **{str(k): str(v) for k, v in action.get("env", {}).items()}}
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=float(action.get("timeout", 20)), env=env
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"{argv[0]}: {exc}"
        return proc.returncode == 0, (proc.stderr or proc.stdout).strip()[:300]
    if kind == "rm":
        try:
            Path(action["path"]).unlink()
        except FileNotFoundError:
            return True, "already gone"
        except OSError as exc:
            return False, str(exc)
        return True, "removed"
    if kind == "write":
        try:
            Path(action["path"]).write_text(str(action["text"]))
        except OSError as exc:
            return False, str(exc)
        return True, "written"
    if kind == "signal":
        pid, start = int(action["pid"]), int(action.get("start", 0))
        if not procs.is_alive(pid, start):
            return True, "process gone"
        try:
            os.kill(pid, int(action["signal"]))
        except ProcessLookupError:
            return True, "process gone"
        return True, f"sent signal {action['signal']}"
    return False, f"unknown undo action {kind!r}"
