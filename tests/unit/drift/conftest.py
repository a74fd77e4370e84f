from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vigil.datasets import Split, load_smd_like

# machine-1-4: a reference fitted on the first half of its train split stays quiet on the held-back
# train rows right after it and drifts on test rows 4320-5760, which hold the labelled event
# 5626-5679 and a shift in half of the signals (docs/training.md, "Drift").
MACHINE = "machine-1-4"
WINDOW = 1440
GAP = 60
SHIFTED_TEST_ROWS = slice(4320, 5760)


@pytest.fixture(scope="session")
def smd_split(data_dir: Path) -> Split:
    return load_smd_like(data_dir / "smd", MACHINE)


@pytest.fixture(scope="session")
def half(smd_split: Split) -> int:
    return len(smd_split.train) // 2


@pytest.fixture(scope="session")
def labels_1_4(data_dir: Path) -> np.ndarray:
    return np.loadtxt(data_dir / "smd" / "test_label" / f"{MACHINE}.txt")
