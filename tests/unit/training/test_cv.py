from __future__ import annotations

import pytest

from vigil.errors import DataError
from vigil.training import expanding_window_splits, folds


def test_folds_expand_keep_the_gap_and_never_look_ahead() -> None:
    splits = expanding_window_splits(2400, n_folds=3, gap=60, min_train=1200)
    assert len(splits) == 3
    previous_valid_end = 1200
    for train, valid in splits:
        assert train.start == 0
        assert valid.start - train.stop == 60  # the gap
        assert valid.start == previous_valid_end  # validation windows tile the rest, in order
        previous_valid_end = valid.stop
    assert previous_valid_end == 2400
    assert [t.stop for t, _ in splits] == sorted(t.stop for t, _ in splits)  # expanding


def test_fold_objects_are_numbered() -> None:
    assert [f.index for f in folds(100, n_folds=2, gap=5, min_train=50)] == [0, 1]


@pytest.mark.parametrize(
    ("n", "n_folds", "gap", "min_train"),
    [(100, 0, 5, 50), (100, 2, 49, 50), (100, 2, 5, 100), (52, 5, 5, 50)],
)
def test_impossible_splits_are_data_errors(n: int, n_folds: int, gap: int, min_train: int) -> None:
    with pytest.raises(DataError):
        expanding_window_splits(n, n_folds=n_folds, gap=gap, min_train=min_train)
