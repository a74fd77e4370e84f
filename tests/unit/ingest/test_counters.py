from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.features.counters import STALE_NAN, CounterRate, counter_rate, is_stale_marker


def _stream(values: list[float], ts: list[float], max_gap: float = 300.0) -> list[float]:
    rate = CounterRate(max_gap=max_gap)
    return [rate.update(t, v) for t, v in zip(ts, values, strict=True)]


def test_plain_increase_is_divided_by_interval() -> None:
    out = counter_rate([0.0, 10.0, 40.0], [100.0, 102.0, 105.0])
    assert math.isnan(out[0])
    assert out[1:].tolist() == [5.0, 10.0]


def test_reset_counts_new_value_as_increase() -> None:
    # Prometheus assumes the restarted counter began at zero, so 100 -> 3 means 3 new events.
    out = counter_rate([90.0, 100.0, 3.0, 8.0], [0.0, 1.0, 2.0, 3.0])
    assert out[1:].tolist() == [10.0, 3.0, 5.0]


def test_first_sample_gap_and_stale_marker_are_nan_not_zero() -> None:
    values = [1.0, 2.0, STALE_NAN, 4.0, 5.0, 6.0, 7.0]
    ts = [0.0, 1.0, 2.0, 3.0, 4.0, 400.0, 401.0]
    out = counter_rate(values, ts, max_gap=300.0)
    expected = [np.nan, 1.0, np.nan, np.nan, 1.0, np.nan, 1.0]
    np.testing.assert_array_equal(out, expected)
    assert not np.any(out == 0.0)


def test_flat_counter_gives_zero_rate() -> None:
    assert counter_rate([5.0, 5.0], [0.0, 1.0])[1] == 0.0


def test_duplicate_or_backwards_timestamp_is_nan() -> None:
    out = counter_rate([1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 1.0, 0.5])
    assert math.isnan(out[2]) and math.isnan(out[3])


def test_datetime_timestamps() -> None:
    ts = np.array(["2026-01-01T00:00:00", "2026-01-01T00:00:02"], dtype="datetime64[s]")
    assert counter_rate([0.0, 4.0], ts)[1] == 2.0


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="equally long"):
        counter_rate([1.0, 2.0], [0.0])


def test_stale_marker_is_distinguished_from_plain_nan() -> None:
    assert is_stale_marker(STALE_NAN)
    assert not is_stale_marker(float("nan"))
    assert not is_stale_marker(0.0)


def test_state_round_trip_continues_the_stream() -> None:
    a = CounterRate(max_gap=10.0)
    a.update(0.0, 1.0)
    b = CounterRate()
    b.load_state(a.state_dict())
    assert b.update(2.0, 5.0) == 2.0
    b.reset()
    assert math.isnan(b.update(3.0, 6.0))


_samples = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=30.0),  # time step
        st.one_of(st.floats(min_value=0.0, max_value=1e9), st.just(math.nan), st.just(STALE_NAN)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_samples, st.floats(min_value=0.5, max_value=20.0))
def test_incremental_equals_batch(samples: list[tuple[float, float]], max_gap: float) -> None:
    ts = np.cumsum([s[0] for s in samples]).tolist()
    values = [s[1] for s in samples]
    batch = counter_rate(values, ts, max_gap=max_gap)
    stream = np.array(_stream(values, ts, max_gap=max_gap))
    np.testing.assert_array_equal(batch, stream)
