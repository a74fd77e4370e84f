"""The cleanup journal's bookkeeping, with file actions only (the real resources are integration-tested)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.errors import ConfigError
from vigil.validation.journal import CleanupJournal


def test_live_owner_entries_are_left_alone_until_it_is_gone(tmp_path: Path) -> None:
    j = CleanupJournal(tmp_path / "j.jsonl")
    victim = tmp_path / "filler"
    entry = j.add("disk_full", {"kind": "rm", "path": str(victim)})
    victim.write_bytes(b"x")
    assert j.recover() == []  # this process owns it and is alive
    assert victim.exists()
    assert [e.entry_id for e in j.open_entries(include_live=True)] == [entry]
    res = j.undo(entry, {"kind": "rm", "path": str(victim)})
    assert res.ok and not victim.exists()
    assert j.open_entries(include_live=True) == []


def test_entries_of_a_dead_owner_are_undone_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    log = tmp_path / "order.txt"
    # A child journals three actions and exits without undoing them, as a SIGKILLed run would.
    code = (
        "import sys; from pathlib import Path; from vigil.validation.journal import CleanupJournal\n"
        f"j = CleanupJournal(Path({str(path)!r}))\n"
        f"for i in range(3): j.add('t', {{'kind': 'argv', 'argv': ['sh', '-c', f'echo {{i}} >> {log}']}})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    j = CleanupJournal(path)
    assert len(j.open_entries()) == 3
    results = j.recover()
    assert [r.ok for r in results] == [True, True, True]
    assert log.read_text().split() == ["2", "1", "0"]
    assert j.open_entries(include_live=True) == []
    assert j.recover() == []  # idempotent
    assert path.read_text() == ""  # compacted: nothing left to remember


def test_update_replaces_the_action_and_torn_lines_are_ignored(tmp_path: Path) -> None:
    j = CleanupJournal(tmp_path / "j.jsonl")
    entry = j.add("t", {"kind": "rm", "path": "/nonexistent/a"})
    j.update(entry, {"kind": "write", "path": str(tmp_path / "delay"), "text": "0"})
    with open(j.path, "a") as fh:
        fh.write('{"op": "add", "id": "torn", "owner_pi')  # a crash in mid-write
    [open_entry] = j.open_entries(include_live=True)
    assert open_entry.action["kind"] == "write"
    j.recover(include_live=True)
    assert (tmp_path / "delay").read_text() == "0"
    assert all(json.loads(line)["op"] for line in j.path.read_text().splitlines())


def test_undo_of_something_already_gone_is_not_an_error(tmp_path: Path) -> None:
    j = CleanupJournal(tmp_path / "j.jsonl")
    entry = j.add("t", {"kind": "rm", "path": str(tmp_path / "never-created")})
    assert j.undo(entry, {"kind": "rm", "path": str(tmp_path / "never-created")}).detail == "already gone"
    entry = j.add("t", {"kind": "session", "token": "nobody-has-this", "sid": 0})
    assert j.undo(entry, {"kind": "session", "token": "nobody-has-this", "sid": 0}).ok


def test_argv_undo_runs_with_the_journaled_environment(tmp_path: Path) -> None:
    # The stack's `vigil down` must reach the campaign's state directory, whatever the caller's is.
    j = CleanupJournal(tmp_path / "j.jsonl")
    action = {"kind": "argv", "argv": ["sh", "-c", f'echo "$VIGIL_HOME" > {tmp_path / "seen"}'],
              "env": {"VIGIL_HOME": "/campaign/home"}}  # fmt: skip
    entry = j.add("stack", action)
    assert j.undo(entry, action).ok
    assert (tmp_path / "seen").read_text().strip() == "/campaign/home"


def test_a_journal_others_could_write_is_never_replayed(tmp_path: Path) -> None:
    journal = CleanupJournal(tmp_path / "run" / "journal.jsonl")
    journal.add("test", {"kind": "rm", "path": str(tmp_path / "nothing-here")})
    assert oct(journal.path.stat().st_mode & 0o777) == "0o600"
    journal.path.chmod(0o666)
    with pytest.raises(ConfigError, match="refusing to replay"):
        journal.recover(include_live=True)
    journal.path.chmod(0o600)
    if os.geteuid() == 0:  # only root can hand a file to another user
        os.chown(journal.path, 65534, 65534)
        with pytest.raises(ConfigError, match="uid 65534"):
            journal.recover(include_live=True)
        os.chown(journal.path, 0, 0)
    journal.recover(include_live=True)
