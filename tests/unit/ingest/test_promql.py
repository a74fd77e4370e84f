from __future__ import annotations

import socket

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.errors import BadRequest, UpstreamUnavailable
from vigil.ingest.archive import parse_selector
from vigil.ingest.samples import window_samples
from vigil.prometheus import MAX_POINTS_PER_SERIES, PromClient, RangeSeries, chunk_bounds
from vigil.promql import promql_escape, selector

INJECTION = '"} or vector(1) #'


def test_injection_value_stays_inside_the_string_literal() -> None:
    expr = selector("up", instance=INJECTION)
    assert expr == 'up{instance="\\"} or vector(1) #"}'
    # Only the closing brace at the very end may end the selector.
    assert parse_selector(expr) == [("__name__", "=", "up"), ("instance", "=", INJECTION)]


def test_escape_backslashes_newlines_and_control_characters() -> None:
    assert promql_escape('a\\"b') == 'a\\\\\\"b'
    assert promql_escape("x\ny\tz\x01") == "x\\ny\\tz\\x01"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["=", "!=", "=~", "!~"]))
def test_any_label_value_round_trips(value: str, op: str) -> None:
    expr = selector("node_load1", [("instance", op, value)], job="node")
    assert parse_selector(expr) == [("__name__", "=", "node_load1"), ("instance", op, value), ("job", "=", "node")]


@pytest.mark.parametrize(
    ("metric", "matchers"),
    [
        ("up or vector(1)", []),
        ("up", [("instance} or vector(1)", "=", "x")]),
        ("up", [("instance", "=~~", "x")]),
        (None, []),
    ],
)
def test_names_and_operators_are_validated(metric: str | None, matchers: list[tuple[str, str, str]]) -> None:
    with pytest.raises(BadRequest):
        selector(metric, matchers)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=200_000),
    st.sampled_from([1, 2, 5, 15, 60]),
    st.integers(min_value=2, max_value=MAX_POINTS_PER_SERIES),
    st.one_of(st.none(), st.integers(min_value=1, max_value=5000)),
)
def test_chunks_cover_every_step_exactly_once(
    start: int, span: int, step: int, max_points: int, chunk_s: int | None
) -> None:
    chunks = chunk_bounds(start, start + span, step, max_points, chunk_s)
    steps = []
    for lo, hi in chunks:
        n = round((hi - lo) / step) + 1
        assert n <= max_points
        steps.extend(lo + i * step for i in range(n))
    assert steps == [start + i * step for i in range(span // step + 1)]


def test_default_chunks_respect_prometheus_point_limit() -> None:
    chunks = chunk_bounds(0, 86_400, 1)
    assert chunks[0] == (0.0, 10_999.0)
    assert all(hi - lo + 1 <= MAX_POINTS_PER_SERIES for lo, hi in chunks)


def test_bad_step_is_rejected() -> None:
    with pytest.raises(BadRequest, match="step"):
        chunk_bounds(0, 10, 0)


def test_unreachable_server_is_one_line_upstream_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = PromClient(f"http://127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(UpstreamUnavailable) as info:
        client.query("up")
    assert "\n" not in str(info.value) and f"127.0.0.1:{port}" in str(info.value)


def test_window_samples_flattens_series_in_order_and_skips_empty_ones() -> None:
    series = [
        RangeSeries({"__name__": "a"}, np.array([9.0, 10.0, 11.0, 12.0]), np.array([1.0, 2.0, np.nan, 4.0])),
        RangeSeries({"__name__": "b"}, np.array([20.0]), np.array([5.0])),  # after the window
        RangeSeries({"__name__": "c"}, np.array([10.0, 10.9996]), np.array([7.0, 8.0])),  # rounds to 11 000 ms
    ]
    w = window_samples(series, 10_000, 11_000)
    assert w.row.tolist() == [0, -1, 1]
    assert w.index.tolist() == [0, 0, 1, 1]
    assert w.ts_ms.tolist() == [10_000, 11_000, 10_000, 11_000]
    assert np.array_equal(w.values, [2.0, np.nan, 7.0, 8.0], equal_nan=True)
    assert w.starts.tolist() == [0, 2] and w.counts.tolist() == [2, 2]
    assert window_samples(series[1:2], 10_000, 11_000).rows == 0
