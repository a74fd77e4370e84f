from __future__ import annotations

import math

import numpy as np
from prometheus_client import CollectorRegistry

from vigil.features.counters import STALE_NAN
from vigil.ingest.quality import (
    DataQualityCollector,
    QualityTracker,
    TargetHealth,
    is_counter_name,
    metric_family,
)
from vigil.prometheus import RangeSeries

STEP_MS = 300_000


def _window(s: RangeSeries, n: int, offset: int = 0) -> tuple[RangeSeries, int, int]:
    part = RangeSeries(dict(s.labels), s.timestamps[offset : offset + n].copy(), s.values[offset : offset + n].copy())
    return part, int(part.timestamps[0] * 1000), int(part.timestamps[-1] * 1000)


def test_family_names() -> None:
    assert metric_family("demo_http_request_duration_seconds_bucket") == "demo_http_request_duration_seconds"
    assert metric_family("node_cpu_seconds_total") == "node_cpu_seconds_total"
    assert is_counter_name("node_cpu_seconds_total") and not is_counter_name("node_load1")


def test_alert_and_recording_rule_series_are_not_gaps(nab_series: dict[str, RangeSeries]) -> None:
    tracker = QualityTracker(window_s=10 * 86400)
    part, lo, hi = _window(nab_series["cpu"], 20)
    short = RangeSeries({"__name__": "ALERTS", "alertname": "X"}, part.timestamps[:5], part.values[:5])
    rule = RangeSeries({"__name__": "job:cpu:rate1m"}, part.timestamps[:5], part.values[:5])
    tracker.observe_window([part, short, rule], lo, hi, STEP_MS)
    assert set(tracker.report().families) == {"aws_cpu"}


def test_complete_window_is_fully_complete(nab_series: dict[str, RangeSeries]) -> None:
    tracker = QualityTracker(window_s=10 * 86400)
    part, lo, hi = _window(nab_series["cpu"], 100)
    tracker.observe_window([part], lo, hi, STEP_MS)
    fam = tracker.report().families["aws_cpu"]
    assert (fam.expected_steps, fam.present_steps, fam.missing_steps) == (100, 100, 0)
    assert fam.completeness == 1.0


def test_dropped_steps_and_nans_are_counted(nab_series: dict[str, RangeSeries]) -> None:
    tracker = QualityTracker(window_s=10 * 86400)
    part, lo, hi = _window(nab_series["cpu"], 100)
    keep = np.ones(100, dtype=bool)
    keep[[10, 11, 12, 50]] = False  # four scrapes lost
    part.values[20] = math.nan  # one NaN sample (kept as a present step)
    gappy = RangeSeries(part.labels, part.timestamps[keep], part.values[keep])
    tracker.observe_window([gappy], lo, hi, STEP_MS)
    fam = tracker.report().families["aws_cpu"]
    assert (fam.expected_steps, fam.missing_steps, fam.nan_samples) == (100, 4, 1)
    assert fam.completeness == 0.96


def test_series_that_ends_counts_missing_until_forgotten(nab_series: dict[str, RangeSeries]) -> None:
    tracker = QualityTracker(window_s=10 * 86400, forget_after_s=20 * STEP_MS / 1000)
    first, lo, hi = _window(nab_series["cpu"], 50)
    tracker.observe_window([first], lo, hi, STEP_MS)
    # The target dies: the next window has none of its samples.
    second, lo2, hi2 = _window(nab_series["cpu"], 10, offset=50)
    tracker.observe_window([], lo2, hi2, STEP_MS)
    report = tracker.report()
    assert report.families["aws_cpu"].missing_steps == 10
    assert report.families["aws_cpu"].stale_series == 0  # nothing newer to compare with
    # Long gone: forgotten, no longer expected.
    third, lo3, hi3 = _window(nab_series["cpu"], 10, offset=100)
    tracker.observe_window([], lo3, hi3, STEP_MS)
    assert tracker.report().families["aws_cpu"].expected_steps == 60
    assert tracker.report().series == 0


def test_series_ending_under_a_live_target_is_churn_not_a_gap(nab_series: dict[str, RangeSeries]) -> None:
    part, lo, hi = _window(nab_series["cpu"], 40)
    target = {"job": "node", "instance": "h:9100"}
    # An interface's counter that disappears after 25 steps, as when the interface is removed.
    iface = RangeSeries({"__name__": "aws_cpu", **target}, part.timestamps[:25], part.values[:25])
    for up_values, missing in ((np.ones(40), 0), (np.r_[np.ones(25), np.zeros(15)], 15)):
        up = RangeSeries({"__name__": "up", **target}, part.timestamps, up_values)
        tracker = QualityTracker(window_s=10 * 86400)
        tracker.observe_window([iface, up], lo, hi, STEP_MS)
        assert tracker.report().families["aws_cpu"].missing_steps == missing
    # Target down from step 30 only: the five steps before are churn, the ten after are gaps.
    up = RangeSeries({"__name__": "up", **target}, part.timestamps[:30], np.ones(30))
    tracker = QualityTracker(window_s=10 * 86400)
    tracker.observe_window([iface, up], lo, hi, STEP_MS)
    assert tracker.report().families["aws_cpu"].missing_steps == 10


def test_stale_series_against_the_newest(nab_series: dict[str, RangeSeries]) -> None:
    tracker = QualityTracker(window_s=10 * 86400)
    cpu, lo, hi = _window(nab_series["cpu"], 30)
    disk = RangeSeries(nab_series["disk"].labels, cpu.timestamps[:20], nab_series["disk"].values[:20])
    tracker.observe_window([cpu, disk], lo, hi, STEP_MS)
    report = tracker.report()
    assert report.stale_series == 1 and report.families["aws_disk"].stale_series == 1
    assert report.families["aws_disk"].missing_steps == 10


def test_counter_resets_across_windows(nab_series: dict[str, RangeSeries]) -> None:
    # Running totals of real ELB request counts, restarted twice, as a counter would be.
    counts = nab_series["requests"].values[:60]
    total = np.concatenate([np.cumsum(counts[:25]), np.cumsum(counts[25:40]), np.cumsum(counts[40:])])
    ts = nab_series["requests"].timestamps[:60]
    labels = {"__name__": "aws_requests_total", "instance": "elb"}
    tracker = QualityTracker(window_s=10 * 86400)
    for a, b in ((0, 30), (30, 60)):
        s = RangeSeries(labels, ts[a:b], total[a:b])
        tracker.observe_window([s], int(ts[a] * 1000), int(ts[b - 1] * 1000), STEP_MS)
    assert tracker.report().families["aws_requests_total"].counter_resets == 2
    # The same values under a gauge name are not counters.
    gauge = QualityTracker(window_s=10 * 86400)
    as_gauge = RangeSeries({"__name__": "aws_requests"}, ts, total)
    gauge.observe_window([as_gauge], int(ts[0] * 1000), int(ts[-1] * 1000), STEP_MS)
    assert gauge.report().families["aws_requests"].counter_resets == 0


def test_raw_stream_separates_stale_markers_from_nan() -> None:
    tracker = QualityTracker()
    tracker.observe_raw([1.0, math.nan, STALE_NAN, STALE_NAN, 2.0])
    report = tracker.report()
    assert (report.stale_markers, report.raw_nan_samples) == (2, 1)


def test_exposition_in_a_fresh_registry(nab_series: dict[str, RangeSeries]) -> None:
    tracker = QualityTracker(window_s=10 * 86400)
    part, lo, hi = _window(nab_series["disk"], 40)
    tracker.observe_window([RangeSeries(part.labels, part.timestamps[:30], part.values[:30])], lo, hi, STEP_MS)
    tracker.observe_targets(
        [TargetHealth("node", "h:9100", 0.0, 0.01, 0.0), TargetHealth("demo", "h:8080", 1.0, 0.004, 120.0)]
    )
    tracker.observe_collection(1234, 0.5, archived_until_s=hi / 1000, archive_bytes=4096)
    tracker.observe_collection(0, 0.0, ok=False)
    registry = CollectorRegistry()
    registry.register(DataQualityCollector(tracker))
    get = registry.get_sample_value
    assert get("vigil_data_target_up", {"job": "node", "instance": "h:9100"}) == 0.0
    assert get("vigil_data_target_samples_scraped", {"job": "demo", "instance": "h:8080"}) == 120.0
    assert get("vigil_data_family_completeness_ratio", {"family": "aws_disk"}) == 0.75
    assert get("vigil_data_family_missing_steps", {"family": "aws_disk"}) == 10.0
    assert get("vigil_data_family_nan_samples", {"family": "aws_disk"}) is None  # zero counts are left out
    assert get("vigil_data_completeness_ratio") == 0.75
    assert get("vigil_data_samples_archived_total") == 1234.0
    assert get("vigil_data_collection_errors_total") == 1.0
    assert get("vigil_data_archived_until_timestamp_seconds") == hi / 1000
    assert get("vigil_data_archive_bytes") == 4096.0
    assert get("vigil_data_collection_lag_seconds") > 0


def test_report_json_shape(nab_series: dict[str, RangeSeries]) -> None:
    tracker = QualityTracker(window_s=10 * 86400)
    part, lo, hi = _window(nab_series["cpu"], 10)
    tracker.observe_window([part], lo, hi, STEP_MS)
    tracker.observe_targets([TargetHealth("node", "h:9100", 1.0)])
    d = tracker.report().to_dict()
    assert d["families"]["aws_cpu"]["completeness"] == 1.0
    [target] = d["targets"]
    assert target == {"job": "node", "instance": "h:9100", "up": 1.0} | dict.fromkeys(
        ["scrape_duration_s", "samples_scraped", "timestamp"]
    )
    assert d["targets_down"] == 0
