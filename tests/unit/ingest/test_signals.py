from __future__ import annotations

import math

import numpy as np
import pytest

from vigil.features.counters import STALE_NAN, counter_rate
from vigil.ingest.catalog import HOST_SIGNALS, SERVICE_SIGNALS, Entity, compute_signals, entity_of
from vigil.ingest.expr import Columns, Input, histogram_quantile
from vigil.ingest.stream import SignalAssembler
from vigil.prometheus import RangeSeries

HOST = {"instance": "db-1:9100", "job": "node"}


def _steps(asm: SignalAssembler, samples: list[tuple[dict[str, str], int, float]]) -> dict[float, dict[str, float]]:
    out = asm.add_many(samples) + asm.flush()
    return {s.timestamp: s.values for s in out}


def test_entities() -> None:
    assert entity_of("node_load1", HOST) == Entity("host", "db-1:9100", "instance")
    assert entity_of("demo_http_requests_total", {"job": "demo", "service": "orders"}).name == "orders"
    assert entity_of("demo_http_requests_total", {"job": "demo"}) == Entity("service", "demo", "job")
    assert entity_of("go_goroutines", HOST) is None


def test_gauge_is_carried_forward_until_a_stale_marker(nab_series: dict[str, RangeSeries]) -> None:
    cpu = nab_series["cpu"].values[:3]
    load = {"__name__": "node_load1", **HOST}
    asm = SignalAssembler(step_s=1.0)
    steps = _steps(asm, [(load, 1_000, cpu[0]), (load, 3_200, cpu[1]), (load, 6_000, STALE_NAN), (load, 8_000, cpu[2])])
    got = {t: v["load1"] for t, v in steps.items()}
    # Step 2 still sees the sample of step 1; 3.2 s belongs to step 4 (last sample at or before it).
    assert got[1.0] == got[2.0] == got[3.0] == cpu[0]
    assert got[4.0] == got[5.0] == cpu[1]
    assert math.isnan(got[6.0]) and math.isnan(got[7.0])
    assert got[8.0] == cpu[2]


def test_counter_rates_match_batch_counter_rate(nab_series: dict[str, RangeSeries]) -> None:
    counts = nab_series["requests"].values[:40]
    total = np.cumsum(counts)
    total[20:] -= total[19]  # a restart: the counter starts again from zero
    labels = {"__name__": "demo_http_requests_total", "job": "demo", "code": "200"}
    asm = SignalAssembler(step_s=1.0)
    steps = _steps(asm, [(labels, (i + 1) * 1000, v) for i, v in enumerate(total)])
    stream = np.array([steps[float(i + 1)]["request_rate"] for i in range(40)])
    np.testing.assert_array_equal(stream, counter_rate(total, np.arange(1, 41)))
    # No 5xx series at all (nothing has failed yet): the error ratio is 0 wherever the request
    # rate is known and positive, NaN where it is not.
    ratios = np.array([steps[float(i + 1)]["error_ratio"] for i in range(40)])
    known = stream > 0
    assert known[1:].sum() > 30
    assert np.all(ratios[known] == 0) and np.all(np.isnan(ratios[~known & ~(stream == 0)]))


def test_error_ratio_is_zero_before_the_first_5xx_series_appears(nab_series: dict[str, RangeSeries]) -> None:
    """Batch (archive) path: a window in which the first 503 happens part-way through."""
    rate = nab_series["requests"].values[:30].astype(float)
    errors = np.full(30, np.nan)
    errors[20:] = 1.0  # the 5xx series exists from step 20 on
    cols: dict[Input, Columns] = {}
    for inp in {i for sig in SERVICE_SIGNALS for i in sig.inputs}:
        if inp.metrics == ("demo_http_requests_total",) and inp.matchers:
            cols[inp] = Columns([{"code": "503"}], errors[:, None])
        elif inp.metrics == ("demo_http_requests_total",):
            cols[inp] = Columns([{"code": "200"}, {"code": "503"}], np.column_stack([rate, errors]))
        else:
            cols[inp] = Columns([], np.empty((30, 0)))
    ratio = compute_signals("service", cols, 30)["error_ratio"]
    # `or vector(0)` per step, as in PromQL: no 5xx series yet means no errors, not "unknown".
    assert np.all(ratio[:20][rate[:20] > 0] == 0)
    assert np.all(ratio[20:] > 0)


def test_in_flight_accepts_either_name() -> None:
    for name in ("demo_http_in_flight_requests", "demo_http_requests_in_flight"):
        asm = SignalAssembler()
        steps = _steps(asm, [({"__name__": name, "job": "demo"}, 1_000, 3.0)])
        assert steps[1.0]["in_flight"] == 3.0


def test_late_and_unused_samples_are_counted() -> None:
    load = {"__name__": "node_load1", **HOST}
    asm = SignalAssembler(step_s=1.0, lag_steps=1)
    asm.add(load, 5_000, 1.0)
    assert [s.timestamp for s in asm.add(load, 7_000, 2.0)] == [5.0, 6.0]
    assert asm.add(load, 4_000, 9.0) == [] and asm.late_samples == 1
    # A sample for a step already out is in order when it is its series' newest: memory's sample of
    # step 6 arrives after step 6 went out (a scrape split over requests), and step 7 carries it.
    total = {"__name__": "node_memory_MemTotal_bytes", **HOST}
    avail = {"__name__": "node_memory_MemAvailable_bytes", **HOST}
    asm.add(total, 7_000, 100.0)
    asm.add(avail, 6_000, 25.0)
    assert asm.late_samples == 1
    [step7] = asm.add(load, 8_000, 2.0)
    assert step7.timestamp == 7.0 and step7.values["memory_used_ratio"] == 0.75
    asm.add({"__name__": "go_goroutines", **HOST}, 7_000, 10.0)
    assert asm.ignored_samples == 1


def test_two_samples_of_a_series_in_one_step_already_scored_are_in_order() -> None:
    """A sender catching up sends two scrapes a few hundred ms apart: both fall in one step, which
    early completion scored on the first. The second is still its series' newest sample, so it is
    in order (answered 204, not 400); one older than the series' newest is not."""
    load = {"__name__": "node_load1", **HOST}
    asm = SignalAssembler(step_s=1.0, early=True)
    asm.add(load, 9_000, 1.0)
    asm.add(load, 10_000, 1.0)
    assert [s.timestamp for s in asm.add(load, 10_200, 2.0)] == [11.0]  # step 11 scored early
    assert asm.add(load, 10_900, 3.0) == [] and asm.late_samples == 0
    asm.add(load, 10_500, 9.0)
    assert asm.late_samples == 1
    [step12] = asm.add(load, 11_900, 4.0)
    assert (step12.timestamp, step12.values["load1"]) == (12.0, 4.0)


def test_entities_are_assembled_separately() -> None:
    a = {"__name__": "node_load1", "instance": "a:9100"}
    b = {"__name__": "node_load1", "instance": "b:9100"}
    asm = SignalAssembler()
    out = asm.add_many([(a, 1_000, 1.0), (b, 1_000, 2.0), (a, 2_000, 3.0), (b, 2_000, 4.0)]) + asm.flush()
    assert sorted((s.entity, s.timestamp, s.values["load1"]) for s in out) == [
        ("a:9100", 1.0, 1.0),
        ("a:9100", 2.0, 3.0),
        ("b:9100", 1.0, 2.0),
        ("b:9100", 2.0, 4.0),
    ]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.5, 0.1 + (0.25 - 0.1) * (50 - 40) / (90 - 40)),  # interpolated inside (0.1, 0.25]
        (0.25, 0.05 + (0.1 - 0.05) * (25 - 10) / (40 - 10)),
        (0.05, 0.05 * 5 / 10),  # first bucket: interpolated from 0
        (0.99, 0.25),  # falls into +Inf: the largest finite bound
    ],
)
def testhistogram_quantile_follows_prometheus(q: float, expected: float) -> None:
    # Cumulative bucket counts as Prometheus exposes them (le="0.05", "0.1", "0.25", "+Inf").
    les, counts = ["0.05", "0.1", "0.25", "+Inf"], [10.0, 40.0, 90.0, 100.0]
    # Out-of-order buckets and a second series per bucket (summed by le) must not matter.
    labels = [{"le": le, "code": c} for c in ("200", "500") for le in reversed(les)]
    values = [c / 2 for _ in range(2) for c in reversed(counts)]
    got = histogram_quantile(q, Columns(labels, np.array([values])))
    assert got[0] == pytest.approx(expected)


def testhistogram_quantile_without_observations_is_nan() -> None:
    cols = Columns([{"le": "0.1"}, {"le": "+Inf"}], np.array([[0.0, 0.0]]))
    assert math.isnan(histogram_quantile(0.5, cols)[0])


def test_catalog_is_consistent() -> None:
    names = [s.name for s in HOST_SIGNALS + SERVICE_SIGNALS]
    assert len(names) == len(set(names))
    assert {"cpu_busy", "cpu_iowait", "memory_used_ratio", "load1", "disk_io_utilisation"} <= set(names)
    assert {"request_rate", "error_ratio", "latency_p50", "latency_p99", "in_flight"} <= set(names)
    entity = Entity("host", '"} or vector(1) #', "instance")
    for s in HOST_SIGNALS:
        assert 'instance="\\"} or vector(1) #"' in s.promql(entity)


def test_a_step_goes_out_once_every_series_of_its_entity_reported() -> None:
    """Early completion (serving's mode): the step is the one the lag rule gives, a scrape sooner."""
    load = {"__name__": "node_load1", **HOST}
    total = {"__name__": "node_memory_MemTotal_bytes", **HOST}
    avail = {"__name__": "node_memory_MemAvailable_bytes", **HOST}
    scrapes = [[(load, t * 1000 - 200, 0.1 * t), (total, t * 1000 - 150, 100.0), (avail, t * 1000 - 100, 90.0 - t)]
               for t in range(1, 7)]  # fmt: skip
    early, lagged = SignalAssembler(step_s=1.0, early=True), SignalAssembler(step_s=1.0)
    emitted_after: dict[float, tuple[int, int]] = {}  # step -> (scrape, sample) at which it went out
    out_early, out_lagged = [], []
    for i, scrape in enumerate(scrapes):
        for j, (labels, ts, value) in enumerate(scrape):
            for step in early.add(labels, ts, value):
                emitted_after[step.timestamp] = (i + 1, j)
                out_early.append(step)
            out_lagged += lagged.add(labels, ts, value)
    # The first step waits for the next one (the entity's series are not known yet); from then on a
    # step goes out with its own scrape's last series, not with the next scrape's first sample.
    assert emitted_after[1.0] == (2, 0)
    assert all(emitted_after[float(t)] == (t, 2) for t in range(2, 7))
    lagged_by_t = {s.timestamp: s.values for s in out_lagged + lagged.flush()}
    for step in out_early:
        np.testing.assert_equal(step.values, lagged_by_t[step.timestamp])  # NaN where no input
    # A series that stops reporting holds no step back for good: the lag rule ends it.
    assert [s.timestamp for s in early.add(load, 6_800, 0.7)] == []
    assert [s.timestamp for s in early.add(load, 7_800, 0.8)] == [7.0]
