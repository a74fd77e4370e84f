"""Time-ordered cross-validation: expanding training windows, a gap, never shuffled.

Fold ``k`` trains on ``[0, cut_k - gap)`` and validates on ``[cut_k, cut_{k+1})``: the model
only ever sees the past, and the gap keeps windowed features computed near the cut from leaking
the first validation rows into training.

>>> [(tr.stop, va.start, va.stop) for tr, va in expanding_window_splits(100, n_folds=3, gap=5, min_train=40)]
[(35, 40, 60), (55, 60, 80), (75, 80, 100)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.errors import DataError


@dataclass(frozen=True)
class Fold:
    index: int
    train: slice
    valid: slice


def expanding_window_splits(n: int, *, n_folds: int, gap: int, min_train: int) -> list[tuple[slice, slice]]:
    """``n_folds`` (train, validation) slices over ``n`` time-ordered rows."""
    if n_folds < 1:
        raise DataError("need at least one fold")
    if min_train - gap < 2 or min_train >= n:
        raise DataError(f"cannot split {n} rows into folds after {min_train} training rows with a gap of {gap}")
    cuts = np.linspace(min_train, n, n_folds + 1).astype(int)
    if np.any(np.diff(cuts) < 1):
        raise DataError(f"{n - min_train} validation rows cannot make {n_folds} folds")
    return [(slice(0, int(a) - gap), slice(int(a), int(b))) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def folds(n: int, *, n_folds: int, gap: int, min_train: int) -> list[Fold]:
    return [
        Fold(i, tr, va)
        for i, (tr, va) in enumerate(expanding_window_splits(n, n_folds=n_folds, gap=gap, min_train=min_train))
    ]
