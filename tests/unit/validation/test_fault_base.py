"""The fault lifecycle with a file as the injected resource (the real faults are integration-tested)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from vigil.validation.base import Fault
from vigil.validation.journal import CleanupJournal


class _FileFault(Fault):
    """Creates a file; its effect check fails the way a stalled HTTP probe does."""

    type = "file"

    def __init__(self, journal: CleanupJournal, path: Path) -> None:
        super().__init__(journal)
        self.path = path

    def inject(self) -> None:
        self.journaled({"kind": "rm", "path": str(self.path)})
        self.path.write_text("injected")

    def measure(self) -> dict[str, Any]:
        raise requests.ConnectionError("Read timed out.")


def test_a_failed_effect_check_is_recorded_and_the_fault_still_cleaned_up(tmp_path: Path) -> None:
    victim = tmp_path / "filler"
    fault = _FileFault(CleanupJournal(tmp_path / "j.jsonl"), victim)
    with fault as record:
        assert victim.exists()
    assert not victim.exists()
    assert record.took_effect is False
    assert record.effect == {"measure_error": "ConnectionError: Read timed out."}
    assert record.end >= record.start > 0
    assert [c["ok"] for c in record.cleanup] == [True]
