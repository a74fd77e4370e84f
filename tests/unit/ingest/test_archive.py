from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.errors import BadRequest
from vigil.ingest.archive import HOUR_MS, Archive, hour_windows, parse_selector
from vigil.prometheus import RangeSeries

STEP_MS = 300_000  # NAB's CloudWatch series are 5-minute samples


def _fill(archive: Archive, series: list[RangeSeries], start_ms: int, end_ms: int) -> int:
    rows = 0
    for lo, hi in hour_windows(start_ms, end_ms, STEP_MS, 2 * HOUR_MS):
        rows += archive.write_window(series, lo, hi)
    return rows


def _span(series: list[RangeSeries], hours: int) -> tuple[int, int]:
    start = int(series[0].timestamps[0] * 1000)
    start = -(-start // HOUR_MS) * HOUR_MS
    return start, start + hours * HOUR_MS - STEP_MS


def test_round_trip_keeps_every_sample_and_label(tmp_path: Path, nab_series: dict[str, RangeSeries]) -> None:
    series = list(nab_series.values())
    archive = Archive(tmp_path)
    start, end = _span(series, 6)
    rows = _fill(archive, series, start, end)
    assert rows == 3 * 6 * 12
    back = archive.read(start / 1000, end / 1000)
    assert len(back) == rows
    for s in series:
        got = back[back["metric"] == s.name]
        keep = (s.timestamps * 1000 >= start) & (s.timestamps * 1000 <= end)
        np.testing.assert_array_equal(got["value"].to_numpy(), s.values[keep])
        assert set(got["instance"]) == {s.labels["instance"]} and set(got["job"]) == {"cloudwatch"}
    assert archive.last_end_ms() == end
    stats = archive.stats()
    assert (stats.series, stats.samples) == (3, rows)
    assert stats.start == pd.Timestamp(start, unit="ms", tz="UTC") and stats.bytes > 0


def test_read_filters_by_selector_and_time(tmp_path: Path, nab_series: dict[str, RangeSeries]) -> None:
    archive = Archive(tmp_path)
    start, end = _span(list(nab_series.values()), 3)
    _fill(archive, list(nab_series.values()), start, end)
    cpu = nab_series["cpu"]
    frame = archive.read(start / 1000, (start + HOUR_MS) / 1000, f'aws_cpu{{instance="{cpu.labels["instance"]}"}}')
    assert set(frame["metric"]) == {"aws_cpu"} and len(frame) == 13
    assert archive.read(matchers=[("__name__", "=~", "aws_(disk|requests)")])["metric"].nunique() == 2
    # Plain alternations and instance equality are pushed into the scan; results must not change.
    pushed = archive.read(
        matchers=[("__name__", "=~", "aws_disk|aws_requests"), ("instance", "=", cpu.labels["instance"])]
    )
    assert pushed.empty
    both = archive.read(matchers=[("__name__", "=~", "aws_disk|aws_cpu"), ("job", "=", "cloudwatch")])
    assert set(both["metric"]) == {"aws_disk", "aws_cpu"} and len(both) == 2 * 36
    assert archive.read(matchers=[("job", "!=", "cloudwatch")]).empty
    wide = archive.read_wide(start / 1000, end / 1000, [("__name__", "=~", "aws_.*")])
    assert wide.shape == (36, 3) and isinstance(wide.index, pd.DatetimeIndex)


def test_window_may_not_straddle_an_hour(tmp_path: Path, nab_series: dict[str, RangeSeries]) -> None:
    start, _ = _span([nab_series["cpu"]], 1)
    with pytest.raises(BadRequest, match="straddles"):
        Archive(tmp_path).write_window([nab_series["cpu"]], start, start + HOUR_MS)


def test_empty_window_still_records_progress(tmp_path: Path, nab_series: dict[str, RangeSeries]) -> None:
    archive = Archive(tmp_path)
    far = 4_000_000_000_000  # year 2096: none of the recorded samples fall here
    assert archive.write_window([nab_series["cpu"]], far, far + STEP_MS) == 0
    assert archive.last_end_ms() == far + STEP_MS
    assert archive.stats().samples == 0 and archive.stats().start is None


def test_compaction_merges_closed_hours_without_losing_rows(tmp_path: Path, nab_series: dict[str, RangeSeries]) -> None:
    archive = Archive(tmp_path)
    series = list(nab_series.values())
    start, end = _span(series, 3)
    for lo, hi in hour_windows(start, end, STEP_MS, 2 * STEP_MS):  # many small parts
        archive.write_window(series, lo, hi)
    before = archive.read()
    assert len(archive.files()) == 18
    assert archive.compact(before_ms=start + 2 * HOUR_MS) == 2  # the third hour is still open
    kinds = [f.kind for f in archive.files()]
    assert kinds == ["compact", "compact"] + ["part"] * 6
    pd.testing.assert_frame_equal(archive.read(), before)
    assert archive.compact(before_ms=start + 2 * HOUR_MS) == 0  # idempotent
    assert archive.last_end_ms() == end


def test_a_closed_hour_keeps_its_merged_files_and_only_new_parts_are_merged(
    tmp_path: Path, nab_series: dict[str, RangeSeries]
) -> None:
    archive = Archive(tmp_path)
    series = list(nab_series.values())
    start, end = _span(series, 1)
    windows = list(hour_windows(start, end, STEP_MS, STEP_MS))
    for lo, hi in windows[:8]:
        archive.write_window(series, lo, hi)
    assert archive.compact(before_ms=start, open_parts=4) == 1  # open hour: 8 parts -> one file
    for lo, hi in windows[8:]:
        archive.write_window(series, lo, hi)
    before = archive.read()
    assert archive.compact(before_ms=start + HOUR_MS) == 1  # closed: its remaining parts only
    assert [f.kind for f in archive.files()] == ["compact", "compact"]
    assert archive.compact(before_ms=start + HOUR_MS) == 0
    pd.testing.assert_frame_equal(archive.read(), before)
    assert archive.size_bytes() == archive.stats().bytes > 0


def test_crash_leftovers_are_ignored_and_cleaned(tmp_path: Path, nab_series: dict[str, RangeSeries]) -> None:
    archive = Archive(tmp_path)
    series = list(nab_series.values())
    start, end = _span(series, 1)
    for lo, hi in hour_windows(start, end, STEP_MS, 4 * STEP_MS):
        archive.write_window(series, lo, hi)
    first_part = archive.files()[0].path
    saved = tmp_path / "saved.parquet"
    shutil.copy(first_part, saved)
    before = archive.read()
    archive.compact(before_ms=end + STEP_MS)
    # A crash between writing the compact file and deleting its inputs leaves a part behind...
    shutil.copy(saved, first_part)
    # ...and a crash mid-write leaves a temporary file.
    tmp_file = first_part.parent / ".tmp-crashed.parquet"
    tmp_file.write_bytes(b"PAR1 half written")
    pd.testing.assert_frame_equal(archive.read(), before)
    assert archive.stats().samples == len(before)
    archive.clean_temp()
    assert not tmp_file.exists()


def test_retention_drops_whole_old_hours(tmp_path: Path, nab_series: dict[str, RangeSeries]) -> None:
    archive = Archive(tmp_path)
    series = list(nab_series.values())
    start, end = _span(series, 30)  # crosses a day boundary
    _fill(archive, series, start, end)
    now_s = (end + STEP_MS) / 1000
    assert archive.apply_retention(retention_s=5 * 3600, now_s=now_s) == 25
    assert archive.read()["timestamp"].min() == pd.Timestamp(start + 25 * HOUR_MS, unit="ms", tz="UTC")
    assert len(list(tmp_path.glob("date=*"))) == 1


def test_files_carry_their_series_in_metadata(tmp_path: Path, nab_series: dict[str, RangeSeries]) -> None:
    archive = Archive(tmp_path)
    start, end = _span([nab_series["cpu"]], 1)
    _fill(archive, [nab_series["cpu"]], start, end)
    meta = pq.read_metadata(archive.files()[0].path).metadata
    assert b"aws_cpu" in meta[b"vigil.series"]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=100 * HOUR_MS),
    st.integers(min_value=0, max_value=5 * HOUR_MS),
    st.sampled_from([1000, 7000, 15_000, 60_000]),
    st.integers(min_value=1, max_value=2 * HOUR_MS),
)
def test_hour_windows_tile_the_grid(start: int, span: int, step: int, chunk: int) -> None:
    start = start // step * step
    end = start + span // step * step
    seen = []
    for lo, hi in hour_windows(start, end, step, chunk):
        assert lo // HOUR_MS == hi // HOUR_MS
        assert hi - lo < max(chunk, step)
        seen.extend(range(lo, hi + 1, step))
    assert seen == list(range(start, end + 1, step))


def test_parse_selector_rejects_garbage() -> None:
    with pytest.raises(BadRequest):
        parse_selector('up{instance="x" or 1}')


def test_open_hour_parts_are_merged_in_batches(tmp_path: Path, nab_series: dict[str, RangeSeries]) -> None:
    archive = Archive(tmp_path)
    series = list(nab_series.values())
    start, end = _span(series, 1)
    windows = list(hour_windows(start, end, STEP_MS, STEP_MS))  # 12 one-step parts
    for lo, hi in windows[:4]:
        archive.write_window(series, lo, hi)
    # The hour is still open: fewer than 5 parts wait for more.
    assert archive.compact(before_ms=start, open_parts=5) == 0
    assert [f.kind for f in archive.files()] == ["part"] * 4
    for lo, hi in windows[4:]:
        archive.write_window(series, lo, hi)
    before = archive.read()
    assert archive.compact(before_ms=start, open_parts=5) == 1
    assert [f.kind for f in archive.files()] == ["compact"]
    assert archive.compact(before_ms=start, open_parts=5) == 0
    pd.testing.assert_frame_equal(archive.read(), before)
    stats = archive.stats()
    assert stats.samples == len(before) and stats.series == 3
    assert stats.start == pd.Timestamp(start, unit="ms", tz="UTC")
    assert stats.end == pd.Timestamp(end, unit="ms", tz="UTC")


@pytest.mark.parametrize("reading", ["read", "stats"])
def test_a_reader_whose_parts_a_compaction_merged_lists_them_again(
    tmp_path: Path, nab_series: dict[str, RangeSeries], reading: str
) -> None:
    # The retrainer listed an hour's parts; the collector merged them before the reader opened them.
    series = list(nab_series.values())
    writer, reader = Archive(tmp_path), Archive(tmp_path)
    start, end = _span(series, 1)
    for lo, hi in hour_windows(start, end, STEP_MS, STEP_MS):
        writer.write_window(series, lo, hi)
    expected = getattr(Archive(tmp_path), reading)()
    listings = 0
    listed = reader.files

    def list_then_compact(start_ms: int | None = None, end_ms: int | None = None) -> list:
        nonlocal listings
        listings += 1
        files = listed(start_ms, end_ms)
        if listings == 1:
            assert writer.compact(before_ms=end + STEP_MS) == 1
        return files

    reader.files = list_then_compact  # type: ignore[method-assign]
    got = getattr(reader, reading)()
    assert listings == 2
    if reading == "read":
        pd.testing.assert_frame_equal(got, expected)
    else:
        assert (got.samples, got.series, got.start, got.end) == (
            expected.samples,
            expected.series,
            expected.start,
            expected.end,
        )
