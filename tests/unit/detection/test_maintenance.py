"""Maintenance windows added at run time: bounded, pruned, kept across restarts, never fatal to read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from vigil.config import MaintenanceWindow
from vigil.detection.maintenance import MaintenanceBook
from vigil.errors import BadRequest

NOW = 1_800_000_000.0


def test_a_flood_of_windows_is_bounded_and_old_ones_are_dropped(tmp_path: Path) -> None:
    book = MaintenanceBook(path=tmp_path / "maintenance.json", max_windows=3, keep_s=100)
    for _ in range(3):
        book.add({"duration_s": 10}, now=NOW)
    with pytest.raises(BadRequest, match="3 maintenance windows are already declared"):
        book.add({"duration_s": 10}, now=NOW)
    # Ended longer ago than keep_s: forgotten, room again.
    assert len(book.windows(now=NOW + 111)) == 0
    book.add({"duration_s": 10, "entities": ["db-1"]}, now=NOW + 111)
    assert book.covers("db-1", NOW + 115) and not book.covers("web-1", NOW + 115)


def test_declared_windows_are_listed_first_and_cannot_be_ended(tmp_path: Path) -> None:
    declared = MaintenanceWindow(start=datetime.fromtimestamp(NOW, UTC), end=datetime.fromtimestamp(NOW + 60, UTC))
    book = MaintenanceBook([declared], tmp_path / "maintenance.json")
    planned = book.add({"start": datetime.fromtimestamp(NOW + 600, UTC).isoformat(), "duration_s": 60}, now=NOW)
    listed = book.windows(now=NOW + 1)
    assert [(w["source"], w["state"]) for w in listed] == [("vigil.yml", "active"), ("api", "planned")]
    assert book.covers("anything", NOW + 1)
    assert book.end(planned["id"], now=NOW + 1)["state"] == "cancelled"  # not begun: dropped
    assert [w["source"] for w in book.windows(now=NOW + 1)] == ["vigil.yml"]


def test_an_unreadable_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.json"
    path.write_text('[{"id": "a", "window": {"start": "not a time"}}]')
    book = MaintenanceBook(path=path)
    assert book.windows() == [] and path.with_name("maintenance.json.corrupt").exists()
