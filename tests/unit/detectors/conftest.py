"""Real SMD slice (tests/data/smd, MIT, NetManAIOps) as frames and feature matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SMD = Path(__file__).resolve().parents[2] / "data" / "smd"


def _frame(values: np.ndarray, start: int) -> pd.DataFrame:
    index = pd.to_datetime((start + np.arange(len(values))) * 60, unit="s")
    return pd.DataFrame(values, index=index, columns=[f"dim_{j + 1:02d}" for j in range(values.shape[1])])


@pytest.fixture(scope="session")
def smd_frames() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(train frame, test frame, test labels); the test frame's index continues the train's."""
    train = np.loadtxt(SMD / "train" / "machine-1-2.txt", delimiter=",")
    test = np.loadtxt(SMD / "test" / "machine-1-2.txt", delimiter=",")
    labels = np.loadtxt(SMD / "test_label" / "machine-1-2.txt").astype(int)
    return _frame(train, 0), _frame(test, len(train)), labels


Frames = tuple[pd.DataFrame, pd.DataFrame, np.ndarray]


@pytest.fixture(scope="session")
def smd_features(smd_frames: Frames) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardised temporal features of the slice: (train rows, test rows, test labels)."""
    from vigil.features.extractor import FeatureExtractor

    train, test, labels = smd_frames
    both = pd.concat([train, test])
    ts = both.index.asi8 / 1e9
    kinds = ("level", "mean_dev_short", "std_short", "mean_dev_long")
    fx = FeatureExtractor(kinds=kinds).fit(train.to_numpy(), ts[: len(train)], list(train.columns))
    F = fx.transform(both.to_numpy(), ts)
    mu, sd = F[: len(train)].mean(axis=0), F[: len(train)].std(axis=0)
    Z = np.clip((F - mu) / np.where(sd > 1e-9, sd, 1.0), -20, 20)
    return Z[: len(train)], Z[len(train) :], labels
