"""Real SMD slice (tests/data/smd, MIT, NetManAIOps) for feature tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SMD = Path(__file__).resolve().parents[2] / "data" / "smd"


@pytest.fixture(scope="session")
def smd_train() -> np.ndarray:
    return np.loadtxt(SMD / "train" / "machine-1-2.txt", delimiter=",")


@pytest.fixture(scope="session")
def smd_test() -> np.ndarray:
    return np.loadtxt(SMD / "test" / "machine-1-2.txt", delimiter=",")
