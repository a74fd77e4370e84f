"""A small AnomalyPipeline trained once per test process on a real SMD slice (machine-1-2).

Real data only: the rows come from ../shared/data/smd (MIT, NetManAIOps); the timestamps are a
regular grid chosen by the test (SMD published none), so the same rows can drive a 1 s or 0.25 s
stream.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[3]
MACHINE = "machine-1-2"
N_TRAIN = 1500
# The grid starts 45 minutes before this process did: a receiver takes samples up to three hours
# old, so a few thousand 1 s steps from here are in the past and still taken for the whole of a
# `make test` run (45 minutes).
T0 = float(int(time.time()) // 60 * 60 - 45 * 60)


def smd_dir() -> Path:
    return Path(os.environ.get("VIGIL_DATA_DIR", REPO_ROOT.parent / "shared" / "data")) / "smd"


@functools.cache
def smd_rows(split: str) -> np.ndarray:
    return np.loadtxt(smd_dir() / split / f"{MACHINE}.txt", delimiter=",")


def columns() -> list[str]:
    return [f"smd_m{i:02d}" for i in range(smd_rows("train").shape[1])]


def frame(split: str, start: int, stop: int, step_s: float = 1.0, t0: float = T0) -> pd.DataFrame:
    rows = smd_rows(split)[start:stop]
    index = pd.to_datetime(t0 + step_s * np.arange(start, start + len(rows)), unit="s")
    return pd.DataFrame(rows, columns=columns(), index=index)


def trained(step_s: float = 1.0, seed: int = 0, n_train: int = N_TRAIN):  # noqa: ANN201 - AnomalyPipeline
    """One fitted model per (step, seed) in this process, however the arguments are spelled."""
    return _trained(float(step_s), int(seed), int(n_train))


@functools.cache
def _trained(step_s: float, seed: int, n_train: int):  # noqa: ANN202
    from vigil.detectors.pipeline import AnomalyPipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AnomalyPipeline(seed=seed, cross_fit=False).fit(frame("train", 0, n_train, step_s))


def save_model(models_dir: Path, name: str, step_s: float = 1.0, seed: int = 0) -> Path:
    path = models_dir / name
    trained(step_s, seed).save(path)
    return path


def seconds(index: pd.DatetimeIndex) -> np.ndarray:
    """Unix seconds of a DatetimeIndex whatever its unit (pandas 3 defaults to microseconds)."""
    return np.asarray((index - pd.Timestamp(0)).total_seconds(), dtype=np.float64)
