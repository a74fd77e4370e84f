from __future__ import annotations

import pytest

from tests.conftest import unavailable
from tests.unit.detection.realmodel import smd_dir


@pytest.fixture(autouse=True)
def _need_smd() -> None:
    if not (smd_dir() / "train").is_dir():
        unavailable(f"real SMD data not found at {smd_dir()}")
