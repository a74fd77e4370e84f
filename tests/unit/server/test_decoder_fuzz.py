"""The remote_write decoder: exact round trips and no crash on any input (hypothesis)."""

from __future__ import annotations

import math
import struct

import cramjam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.errors import BadRequest
from vigil.features.counters import STALE_NAN_BITS as COUNTERS_STALE_BITS
from vigil.ingest.remote_write import (
    STALE_NAN,
    STALE_NAN_BITS,
    check_headers,
    decode_write_request,
    encode_write_request,
    is_stale_marker,
    parse_write_request,
)

label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True)
label_values = st.text(max_size=20)
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(STALE_NAN))
series = st.tuples(
    st.dictionaries(label_names, label_values, max_size=5).map(lambda d: {**d, "__name__": d.get("__name__") or "m"}),
    st.lists(st.tuples(st.integers(-(2**62), 2**62), floats), max_size=5),
)


def bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def test_stale_marker_is_recognised_by_its_exact_bits_only() -> None:
    assert STALE_NAN_BITS == COUNTERS_STALE_BITS == 0x7FF0000000000002
    assert is_stale_marker(STALE_NAN)
    assert not is_stale_marker(math.nan)
    assert not is_stale_marker(struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000001))[0])
    assert not is_stale_marker(0.0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(series, max_size=6))
def test_round_trip_is_exact(batch: list) -> None:
    decoded = decode_write_request(encode_write_request(batch))
    assert len(decoded.series) == len(batch)
    for got, (labels, samples) in zip(decoded.series, batch, strict=True):
        assert got.labels == labels and got.name == labels["__name__"]
        assert got.timestamps_ms == [t for t, _ in samples]
        assert [bits(v) for v in got.values] == [bits(v) for _, v in samples]  # NaN payloads survive
    stale = sum(1 for _, samples in batch for _, v in samples if bits(v) == STALE_NAN_BITS)
    assert decoded.n_stale == stale


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bodies_raise_only_bad_request(data: bytes) -> None:
    try:
        decode_write_request(data)
    except BadRequest:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_protobuf_inside_valid_snappy_raises_only_bad_request(data: bytes) -> None:
    try:
        decode_write_request(bytes(cramjam.snappy.compress_raw(data)))
    except BadRequest:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(series, min_size=1, max_size=3), st.data())
def test_mutated_valid_messages_raise_only_bad_request(batch: list, data: st.DataObject) -> None:
    raw = bytearray(encode_write_request(batch, compress=False))
    for _ in range(data.draw(st.integers(1, 4))):
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        parse_write_request(bytes(raw))
    except BadRequest:
        pass


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ({"instance": "a"}, "__name__"),
        ({"__name__": "m", "bad-name": "x"}, "invalid label name"),
    ],
)
def test_invalid_series_are_rejected_with_a_reason(labels: dict[str, str], reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        decode_write_request(encode_write_request([(labels, [(1, 1.0)])]))


def test_repeated_label_is_rejected() -> None:
    from vigil.ingest.remote_write import WriteRequest

    msg = WriteRequest()
    ts = msg.timeseries.add()
    for value in ("a", "b"):
        label = ts.labels.add()
        label.name, label.value = "__name__", value
    with pytest.raises(BadRequest, match="repeats"):
        parse_write_request(msg.SerializeToString())


def test_header_checks() -> None:
    check_headers("application/x-protobuf", "snappy", "0.1.0")
    check_headers("application/x-protobuf; proto=prometheus.WriteRequest", "SNAPPY", None)
    for args in (("text/plain", "snappy", "0.1.0"), ("application/x-protobuf", "zstd", "0.1.0")):
        with pytest.raises(BadRequest):
            check_headers(*args)


def test_a_series_with_an_overlong_label_value_is_dropped_alone() -> None:
    batch = decode_write_request(
        encode_write_request(
            [
                ({"__name__": "m", "instance": "x" * 5000}, [(1, 1.0), (2, 2.0)]),
                ({"__name__": "m", "instance": "db-1"}, [(1, 1.0)]),
            ]
        )
    )
    assert [s.labels["instance"] for s in batch.series] == ["db-1"] and batch.n_label_too_long == 2
