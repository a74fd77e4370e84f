"""The chat log the console's incident page reads: bounded, kept across restarts, and a file that
cannot be read is moved aside instead of stopping serving."""

from __future__ import annotations

from pathlib import Path

from vigil.chatops.chatlog import ChatLog


def test_messages_are_kept_by_incident_bounded_and_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "chatlog.json"
    log = ChatLog(path, max_incidents=2, max_messages=3)
    for i in range(5):
        log.record("inc-1", at=float(i), title=f"t{i}", body="b", delivered=True, explanation={"signature": "x"})
    log.record("inc-2", at=9.0, title="other", body="b", delivered=False)
    assert [m["title"] for m in log.messages("inc-1")] == ["t2", "t3", "t4"]
    log.record("inc-3", at=10.0, title="newest", body="b", delivered=None)
    assert log.messages("inc-1") == [], "the oldest incident goes first"

    again = ChatLog(path, max_incidents=2, max_messages=3)
    assert [m["title"] for m in again.messages("inc-2")] == ["other"]
    assert again.messages("inc-3")[0]["delivered"] is None and again.messages("nope") == []


def test_an_unreadable_log_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "chatlog.json"
    path.write_text('{"inc-1": [{"title": "cut sh')
    log = ChatLog(path)
    assert log.messages("inc-1") == [] and path.with_name(path.name + ".corrupt").is_file()
    log.record("inc-1", at=1.0, title="after", body="b", delivered=True)
    assert [m["title"] for m in ChatLog(path).messages("inc-1")] == ["after"]
