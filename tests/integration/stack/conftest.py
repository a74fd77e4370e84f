"""Fixtures for the local-stack integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.stack.stackcli import StackCLI, stack_fixture


@pytest.fixture
def stack(vigil_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackCLI]:
    """A stack on free ports, not started; torn down (and checked for leftovers) after the test."""
    yield from stack_fixture(vigil_home, monkeypatch)
