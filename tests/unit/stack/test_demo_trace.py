"""Replaying the NYC taxi demand trace, time-compressed."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.demo.trace import TRACE_RELPATH, Replay, Trace, find_trace
from vigil.errors import DataError


@pytest.fixture(scope="module")
def trace(data_dir):
    return Trace.from_csv(data_dir / TRACE_RELPATH)


def test_trace_is_the_30_minute_nyc_taxi_series(trace):
    assert len(trace.values) == 10320
    assert set(np.diff(trace.timestamps)) == {1800.0}
    assert trace.values[0] == 10844  # 2014-07-01 00:00:00 in the CSV


def test_mean_rate_over_whole_days_is_the_base_rate(trace):
    replay = Replay(trace, base_rps=4.0, day_s=240.0)
    seven_days = np.arange(0, 7 * 240.0, 1.0)
    rates = np.array([replay.rate(t) for t in seven_days])
    assert 3.0 < rates.mean() < 5.0
    assert rates.max() / rates.min() > 3  # the daily cycle survives compression: a quiet night, a busy evening


def test_a_day_passes_in_day_s_seconds(trace):
    replay = Replay(trace, base_rps=1.0, day_s=240.0)
    assert replay.trace_time(240.0) - replay.trace_time(0.0) == pytest.approx(86400.0)
    assert replay.rate(0.0) == pytest.approx(10844 / trace.values.mean())


def test_start_offset_jumps_to_a_date_and_the_replay_loops(trace):
    offset = trace.start_offset("2014-11-02")  # NYC marathon, a labelled anomaly
    replay = Replay(trace, 1.0, 240.0, offset)
    assert replay.trace_time(0.0) == pytest.approx(trace.timestamps[0] + offset)
    span_wall = (trace.timestamps[-1] - trace.timestamps[0]) / replay.speedup
    assert replay.trace_time(span_wall) == pytest.approx(replay.trace_time(0.0))


def test_bad_inputs_are_data_errors(trace, tmp_path):
    with pytest.raises(DataError, match="not found"):
        Trace.from_csv(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="ISO date"):
        trace.start_offset("yesterday")
    with pytest.raises(DataError, match="after the trace ends"):
        trace.start_offset("2020-01-01")


def test_find_trace_looks_in_each_root_and_says_how_to_get_it(data_dir, tmp_path):
    assert find_trace([tmp_path, data_dir]) == data_dir / TRACE_RELPATH
    with pytest.raises(DataError) as info:
        find_trace([tmp_path / "a", tmp_path / "b"])
    assert "vigil datasets fetch nab" in str(info.value)


def test_missing_trace_is_a_readable_data_error(tmp_path):
    from vigil.demo.trace import find_trace
    from vigil.errors import DataError

    with pytest.raises(DataError, match="vigil datasets fetch nab"):
        find_trace([tmp_path / "no-data", tmp_path / "datasets"])


def test_the_packaged_trace_is_the_last_resort(vigil_home, tmp_path, monkeypatch):
    from vigil.config import load_settings
    from vigil.demo.loadgen import PACKAGED_TRACE_ROOT, trace_roots
    from vigil.demo.trace import find_trace

    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path / "no-data"))
    roots = trace_roots(load_settings())
    assert roots[-1] == PACKAGED_TRACE_ROOT
    found = find_trace(roots)
    assert found.is_relative_to(PACKAGED_TRACE_ROOT) and found.stat().st_size > 200_000
