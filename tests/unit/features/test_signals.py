"""Counter rates and derived domain signals (hand-computed vectors; pure arithmetic)."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.features.derived import find_derived, role_pairs
from vigil.features.signals import SignalBuilder

NAMES = [
    'http_requests_total{status="200"}',
    'http_requests_total{status="500"}',
    'latency_seconds_bucket{le="0.1"}',
    'latency_seconds_bucket{le="0.5"}',
    'latency_seconds_bucket{le="+Inf"}',
    "node_load1",
]


def test_counters_become_rates_and_derived_signals_appear() -> None:
    sb = SignalBuilder().fit(NAMES)
    assert [NAMES[i] for i in sb.counter_idx_] == NAMES[:5]
    assert "app_error_ratio" in sb.signal_names_ and "latency_seconds_p99" in sb.signal_names_
    ts = np.array([0.0, 10.0, 20.0])
    x = np.array(
        [
            [100.0, 0.0, 50.0, 90.0, 100.0, 1.0],
            [190.0, 10.0, 100.0, 180.0, 200.0, 1.5],
            [10.0, 10.0, 100.0, 180.0, 200.0, 2.0],  # the 200 counter reset to 10
        ]
    )
    out = sb.transform(x, ts)
    err = out[:, sb.signal_names_.index("app_error_ratio")]
    assert np.isnan(err[0])  # no rate for the first sample
    assert err[1] == pytest.approx(1.0 / 10.0)  # 1/s errors out of 9/s + 1/s
    assert err[2] == pytest.approx(0.0)  # after the reset: 1/s ok, 0/s errors
    p50 = out[1, sb.signal_names_.index("latency_seconds_p50")]
    # Bucket rates 5, 9, 10 per s: rank 5 falls at the top of the first bucket.
    assert p50 == pytest.approx(0.1)
    p90 = out[1, sb.signal_names_.index("latency_seconds_p90")]
    assert p90 == pytest.approx(0.5)
    assert out[1, 5] == 1.5  # a gauge passes through unchanged


def test_stream_equals_batch() -> None:
    sb = SignalBuilder().fit(NAMES)
    ts = np.arange(6) * 15.0
    x = np.cumsum(np.array([[3, 1, 2, 3, 4, 0.5]] * 6, dtype=float), axis=0)
    x[3, 1] = np.nan
    batch = sb.transform(x, ts)
    stream = sb.new_stream()
    inc = np.stack([stream.update(t, row) for t, row in zip(ts, x, strict=True)])
    np.testing.assert_allclose(inc, batch, equal_nan=True)


def test_ratio_with_zero_denominator_is_unknown() -> None:
    spec = next(d for d in find_derived(["node_netstat_Tcp_RetransSegs", "node_netstat_Tcp_OutSegs"]))
    assert np.isnan(spec.compute(np.array([[0.0, 0.0]]))[0])
    assert spec.compute(np.array([[1.0, 4.0]]))[0] == 0.25


def test_disk_and_network_signals_are_found() -> None:
    names = [
        'node_disk_read_bytes_total{device="sda"}',
        'node_disk_written_bytes_total{device="sda"}',
        'node_network_receive_errs_total{device="eth0"}',
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
    ]
    found = {d.name: d for d in find_derived(names)}
    assert found["disk_throughput_bytes"].num == (0, 1)
    assert found["net_errors"].num == (2,)
    assert role_pairs(names) == [(3, 4)]
