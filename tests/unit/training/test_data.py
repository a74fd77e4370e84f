from __future__ import annotations

import numpy as np
import pytest

from tests.unit.registry.support import SMD_SLICE
from vigil.errors import NotFound
from vigil.training import data_hash, from_dataset


def test_dataset_source_yields_one_entity_per_machine() -> None:
    items = list(from_dataset(SMD_SLICE))
    assert [d.entity for d in items] == ["machine-1-3", "machine-1-4"]
    d = items[0]
    assert d.source == "dataset:smd" and d.step_s == 60.0
    assert len(d.train) == len(d.holdout) == 1200 and d.holdout_labels.sum() == 24  # event 392-416
    labels = d.timeline_labels
    assert (labels[:1200] == -1).all() and labels[1200 + 392] == 1
    assert len(list(from_dataset(SMD_SLICE, ["machine-1-4"], max_rows=300))[0].train) == 300


def test_missing_dataset_is_not_found(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound):
        list(from_dataset(tmp_path))


def test_data_hash_is_stable_and_sensitive() -> None:
    d = next(from_dataset(SMD_SLICE, ["machine-1-3"]))
    again = next(from_dataset(SMD_SLICE, ["machine-1-3"]))
    assert data_hash(d.train) == data_hash(again.train)
    changed = d.train.copy()
    changed.iloc[10, 3] = np.nextafter(changed.iloc[10, 3], 2.0)
    assert data_hash(changed) != data_hash(d.train)
    assert data_hash(d.holdout, d.holdout_labels) != data_hash(d.holdout)


def test_a_window_longer_than_the_history_is_cut_to_what_was_observed() -> None:
    import pandas as pd

    from vigil.training.data import observed_span

    nan = float("nan")
    index = pd.date_range("2026-12-03", periods=7, freq="s", tz="UTC")
    frame = pd.DataFrame({"a": [nan, nan, 1.0, nan, 2.0, nan, nan], "b": [nan, nan, nan, nan, 3.0, nan, nan]}, index)
    span = observed_span(frame)
    assert list(span.index) == list(index[2:5])  # the gap inside the span stays: it is a real outage
    assert observed_span(frame.iloc[:2]).empty
