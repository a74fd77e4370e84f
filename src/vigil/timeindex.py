"""Time indexes as unix seconds: archives, recordings and frames carry pandas DatetimeIndexes in
whatever unit they were read with (the archive's Parquet holds microseconds), and the code that
compares them with alarm or label times wants float seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd

TICKS_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def unix_seconds(index: pd.DatetimeIndex) -> np.ndarray:
    """Seconds since the epoch of each timestamp (a naive one read as UTC), as float64."""
    return index.asi8.astype(np.float64) / TICKS_PER_SECOND[index.unit]
