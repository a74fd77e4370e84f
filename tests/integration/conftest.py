"""Every test under tests/integration/ is marked `integration`: `make test-fast` leaves them out by folder, not by each
module remembering its own `pytestmark`."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)
