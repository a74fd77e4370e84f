"""Prometheus remote_write 1.0 receiver side: header checks and the ``WriteRequest`` decoder.

The body is a protobuf ``prometheus.WriteRequest`` compressed with snappy's *block* format (not the
framed/stream format). The message is parsed by protobuf's C (upb) backend from a descriptor built
here in code, so no ``protoc`` step or generated file is needed; only the fields of spec 1.0 are
declared (labels, samples), and anything else a newer sender adds (histograms, exemplars, metadata)
is skipped as unknown fields.

Every problem with a request raises a :class:`~vigil.errors.BadRequest` subclass with a reason,
because the spec says a 4xx is never retried: bad data must not come back forever. A 5xx belongs
to the caller, for conditions that a retry can cure (no model loaded yet, overload).

>>> body = encode_write_request([({"__name__": "up", "instance": "a"}, [(1_000, 1.0)])])
>>> [(s.name, s.labels["instance"], s.timestamps_ms, s.values) for s in decode_write_request(body).series]
[('up', 'a', [1000], [1.0])]
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from vigil.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

CONTENT_TYPE = "application/x-protobuf"
CONTENT_ENCODING = "snappy"
SUPPORTED_VERSION_MAJOR = "0"  # the 1.0 spec's senders send "0.1.0"
REMOTE_WRITE_VERSION = "0.1.0"

# Prometheus ends a series by writing this exact NaN payload; any other NaN is an ordinary value.
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
_STALE_BYTES = struct.pack("<d", STALE_NAN)

# Prometheus sends at most max_samples_per_send (default 2,000) samples per request, a few hundred
# KiB uncompressed; these limits leave 10x head-room and still bound one request's memory.
DEFAULT_MAX_COMPRESSED_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_DECOMPRESSED_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_SERIES = 100_000
DEFAULT_MAX_LABELS = 64
# Mimir's default: a longer value is a bug or an attack (a request body, a stack trace), never an entity name.
DEFAULT_MAX_LABEL_VALUE_LENGTH = 2048

# What Prometheus sends with every remote_write request (protocol 1.0).
PROMETHEUS_HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_FRAMED_SNAPPY_MAGIC = b"\xff\x06\x00\x00sNaPpY"
_VALID_NAMES: set[str] = {"__name__", "instance", "job"}  # label names already checked against the regex


def _build_classes() -> tuple[type, type]:
    fdp = descriptor_pb2.FileDescriptorProto(name="vigil/prompb_v1.proto", package="vigil.prompb", syntax="proto3")
    fd = descriptor_pb2.FieldDescriptorProto
    opt, rep = fd.LABEL_OPTIONAL, fd.LABEL_REPEATED
    label = fdp.message_type.add(name="Label")
    label.field.add(name="name", number=1, type=fd.TYPE_STRING, label=opt)
    label.field.add(name="value", number=2, type=fd.TYPE_STRING, label=opt)
    sample = fdp.message_type.add(name="Sample")
    sample.field.add(name="value", number=1, type=fd.TYPE_DOUBLE, label=opt)
    sample.field.add(name="timestamp", number=2, type=fd.TYPE_INT64, label=opt)
    series = fdp.message_type.add(name="TimeSeries")
    series.field.add(name="labels", number=1, type=fd.TYPE_MESSAGE, type_name=".vigil.prompb.Label", label=rep)
    series.field.add(name="samples", number=2, type=fd.TYPE_MESSAGE, type_name=".vigil.prompb.Sample", label=rep)
    request = fdp.message_type.add(name="WriteRequest")
    request.field.add(
        name="timeseries", number=1, type=fd.TYPE_MESSAGE, type_name=".vigil.prompb.TimeSeries", label=rep
    )
    # A private pool: the default one would clash with any other library that registers prompb.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("vigil.prompb.WriteRequest")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("vigil.prompb.TimeSeries")),
    )


WriteRequest, TimeSeries = _build_classes()


def is_stale_marker(value: float) -> bool:
    """True only for Prometheus' stale-marker NaN (bit pattern ``0x7ff0000000000002``)."""
    return value != value and struct.pack("<d", value) == _STALE_BYTES


@dataclass(frozen=True, slots=True)
class DecodedSeries:
    name: str
    labels: dict[str, str]  # includes __name__
    timestamps_ms: list[int]
    values: list[float]  # raw, stale markers and NaN/Inf kept as sent; see WriteBatch counts


@dataclass(slots=True)
class WriteBatch:
    series: list[DecodedSeries] = field(default_factory=list)
    n_samples: int = 0
    n_stale: int = 0
    n_nan: int = 0  # NaN that is not a stale marker
    n_inf: int = 0
    n_label_too_long: int = 0  # samples of series dropped for a label value over the limit


def check_headers(content_type: str | None, content_encoding: str | None, version: str | None) -> None:
    """Reject requests that are not remote_write 1.0 before reading their body."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != CONTENT_TYPE:
        # Remote-write 2.0 senders announce proto=io.prometheus.write.v2.Request; 415 tells them to fall back.
        raise UnsupportedMediaType(
            f"Content-Type must be {CONTENT_TYPE} (remote_write 1.0), got {content_type or 'none'!r}"
        )
    params = (content_type or "").split(";")[1:]
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "proto" and val.strip().strip('"') not in ("", "prometheus.WriteRequest"):
            raise UnsupportedMediaType(f"only proto=prometheus.WriteRequest is supported, got {val.strip()!r}")
    if (content_encoding or "").strip().lower() != CONTENT_ENCODING:
        raise UnsupportedMediaType(f"Content-Encoding must be snappy, got {content_encoding or 'none'!r}")
    if version is not None and version.strip() and version.strip().split(".", 1)[0] != SUPPORTED_VERSION_MAJOR:
        raise BadRequest(f"X-Prometheus-Remote-Write-Version {version!r} is not supported; send 0.1.0")


def decompress(
    body: bytes,
    *,
    max_compressed_bytes: int = DEFAULT_MAX_COMPRESSED_BYTES,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> bytes:
    if len(body) > max_compressed_bytes:
        raise PayloadTooLarge(f"body is {len(body)} bytes, the limit is {max_compressed_bytes}")
    if not body:
        raise BadRequest("empty body: expected a snappy-compressed WriteRequest")
    if body.startswith(_FRAMED_SNAPPY_MAGIC):
        raise BadRequest("body uses snappy's framed (stream) format; remote_write requires the block format")
    try:
        # The block header states the decompressed size: check it before allocating anything.
        size = int(cramjam.snappy.decompress_raw_len(body))
    except Exception:  # cramjam raises its own DecompressionError or ValueError on a bad header
        raise BadRequest("body is not snappy block-format data (bad length header)") from None
    if size > max_decompressed_bytes:
        raise PayloadTooLarge(f"body decompresses to {size} bytes, the limit is {max_decompressed_bytes}")
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except Exception:
        raise BadRequest("body is not valid snappy block-format data") from None


def decode_write_request(
    body: bytes,
    *,
    max_compressed_bytes: int = DEFAULT_MAX_COMPRESSED_BYTES,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
    max_series: int = DEFAULT_MAX_SERIES,
    max_labels: int = DEFAULT_MAX_LABELS,
    max_label_value_length: int = DEFAULT_MAX_LABEL_VALUE_LENGTH,
) -> WriteBatch:
    """Decompress and parse one remote_write body; raises ``BadRequest`` (400/413) with the reason."""
    raw = decompress(body, max_compressed_bytes=max_compressed_bytes, max_decompressed_bytes=max_decompressed_bytes)
    return parse_write_request(
        raw, max_series=max_series, max_labels=max_labels, max_label_value_length=max_label_value_length
    )


def parse_write_request(
    raw: bytes,
    *,
    max_series: int = DEFAULT_MAX_SERIES,
    max_labels: int = DEFAULT_MAX_LABELS,
    max_label_value_length: int = DEFAULT_MAX_LABEL_VALUE_LENGTH,
) -> WriteBatch:
    """Parse a WriteRequest. Structural errors are a 400 for the whole request; a series whose label
    value is over ``max_label_value_length`` is dropped alone (counted), so it costs the others nothing."""
    msg = WriteRequest()
    try:
        msg.ParseFromString(raw)
    except DecodeError as exc:
        raise BadRequest(f"body is not a valid protobuf WriteRequest: {exc}") from None
    if len(msg.timeseries) > max_series:
        raise PayloadTooLarge(f"request holds {len(msg.timeseries)} series, the limit is {max_series}")
    batch = WriteBatch()
    isnan, isinf = math.isnan, math.isinf
    for index, ts in enumerate(msg.timeseries):
        if len(ts.labels) > max_labels:
            raise BadRequest(f"series {index} has {len(ts.labels)} labels, the limit is {max_labels}")
        # Each attribute read of a protobuf label builds a new Python string: read every label once.
        pairs = [(label.name, label.value) for label in ts.labels]
        labels = dict(pairs)
        if len(labels) != len(pairs):
            repeated = next(name for i, (name, _v) in enumerate(pairs) if any(n == name for n, _ in pairs[:i]))
            raise BadRequest(f"series {index} repeats label {repeated!r}")
        if max(map(len, labels.values()), default=0) > max_label_value_length:
            batch.n_label_too_long += len(ts.samples)
            continue
        if not _VALID_NAMES.issuperset(labels):
            for name in labels.keys() - _VALID_NAMES:
                if not _LABEL_NAME.match(name):
                    raise BadRequest(f"series {index} has an invalid label name {name[:64]!r}")
                if len(_VALID_NAMES) < 10_000:  # bounded: label names are few, values are not cached
                    _VALID_NAMES.add(name)
        metric = labels.get("__name__", "")
        if not metric:
            raise BadRequest(f"series {index} has no __name__ label")
        timestamps: list[int] = []
        values: list[float] = []
        for sample in ts.samples:
            value = sample.value
            if isnan(value):
                if struct.pack("<d", value) == _STALE_BYTES:
                    batch.n_stale += 1
                else:
                    batch.n_nan += 1
            elif isinf(value):
                batch.n_inf += 1
            timestamps.append(sample.timestamp)
            values.append(value)
        batch.n_samples += len(values)
        batch.series.append(DecodedSeries(metric, labels, timestamps, values))
    return batch


def encode_write_request(
    series: Iterable[tuple[Mapping[str, str], Sequence[tuple[int, float]]]], *, compress: bool = True
) -> bytes:
    """Build a remote_write body the way Prometheus does (labels sorted by name), for tests and benchmarks."""
    msg = WriteRequest()
    for labels, samples in series:
        ts = msg.timeseries.add()
        for name in sorted(labels):
            label = ts.labels.add()
            label.name = name
            label.value = labels[name]
        for timestamp_ms, value in samples:
            sample = ts.samples.add()
            sample.timestamp = int(timestamp_ms)
            sample.value = float(value)
    raw = msg.SerializeToString()
    return snappy_block(raw) if compress else raw


def snappy_block(raw: bytes) -> bytes:
    """``raw`` in snappy's block format, as remote_write bodies are compressed."""
    return bytes(cramjam.snappy.compress_raw(raw))
