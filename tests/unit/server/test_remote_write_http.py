"""POST /api/v1/write over real HTTP with real snappy-compressed protobuf built from SMD rows."""

from __future__ import annotations

import math

import cramjam
import requests

from tests.unit.server.payloads import HEADERS, T0_MS, body, step_series
from vigil.detection.service import DetectionService
from vigil.ingest.remote_write import STALE_NAN, encode_write_request


def post(url: str, data: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{url}/api/v1/write", data=data, headers=headers or HEADERS, timeout=30)


def test_valid_request_is_scored_and_exported(base_url: str, service: DetectionService) -> None:
    resp = post(base_url, body("db-1", range(0, 20)))
    assert resp.status_code == 204, resp.text
    views = {v.entity: v for v in service.engine.views()}
    assert "db-1" in views and 0.0 <= views["db-1"].score <= 1.0
    entities = requests.get(f"{base_url}/v1/entities", timeout=5).json()["entities"]
    assert entities[0]["entity"] == "db-1"
    metrics = requests.get(f"{base_url}/metrics", timeout=5).text
    assert 'vigil_anomaly_score{entity="db-1"}' in metrics
    assert 'vigil_model_info{fast_path="true",model="default",version="smd-a"} 1.0' in metrics
    assert "vigil_ingest_to_score_seconds_bucket" in metrics


def test_wrong_content_type_and_encoding_are_415(base_url: str) -> None:
    data = body("db-1", range(0, 2))
    for headers in (
        {**HEADERS, "Content-Type": "application/json"},
        {**HEADERS, "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
        {**HEADERS, "Content-Encoding": "gzip"},
        {k: v for k, v in HEADERS.items() if k != "Content-Encoding"},
    ):
        resp = post(base_url, data, headers)
        assert resp.status_code == 415, headers
        assert resp.json()["error"]


def test_unsupported_protocol_version_is_400(base_url: str) -> None:
    resp = post(base_url, body("db-1", range(0, 2)), {**HEADERS, "X-Prometheus-Remote-Write-Version": "2.0.0"})
    assert resp.status_code == 400 and "0.1.0" in resp.json()["error"]


def test_bad_bodies_get_400_with_a_reason(base_url: str) -> None:
    raw = encode_write_request(step_series("db-1", range(0, 2)), compress=False)
    cases = {
        "framed": bytes(cramjam.snappy.compress(raw)),  # stream format instead of block format
        "snappy": b"\x00\x01\x02 definitely not snappy",
        "protobuf": bytes(cramjam.snappy.compress_raw(b"\x0a\xff\xff\xff\xff\x0f garbage")),
        "empty": b"",
    }
    for word, data in cases.items():
        resp = post(base_url, data)
        assert resp.status_code == 400, word
        assert word in resp.json()["error"], (word, resp.json())


def test_oversized_bodies_get_413(base_url: str, service: DetectionService) -> None:
    limit = service.settings.serving.max_body_bytes
    resp = post(base_url, b"\x00" * (limit + 1))
    assert resp.status_code == 413
    # A tiny body that claims a huge decompressed size (a "zip bomb") is refused before inflating.
    bomb = bytes(cramjam.snappy.compress_raw(b"\x00" * (service.settings.serving.max_decompressed_bytes + 1)))
    assert len(bomb) < limit
    resp = post(base_url, bomb)
    assert resp.status_code == 413 and "decompresses" in resp.json()["error"]


def test_nan_inf_and_stale_markers_are_accepted_as_gaps(base_url: str, service: DetectionService) -> None:
    series = step_series("db-2", range(0, 3))
    labels, samples = series[0]
    series[0] = (labels, [(samples[0][0], math.nan), (samples[1][0], math.inf), (samples[2][0], STALE_NAN)])
    resp = post(base_url, encode_write_request(series))
    assert resp.status_code == 204
    counters = service.stats.counters
    assert counters.get("samples", "non_finite") == 2
    assert counters.get("samples", "stale") == 1
    assert service.engine.views()  # the steps were still scored


def test_out_of_order_is_400_and_keeps_the_in_order_samples(base_url: str, service: DetectionService) -> None:
    assert post(base_url, body("db-3", range(10, 12))).status_code == 204
    # A sender's retry of the last step is harmless...
    assert post(base_url, body("db-3", range(11, 12))).status_code == 204
    # ...an older step is not, but the newer samples in the same request are kept.
    series = step_series("db-3", range(5, 6)) + step_series("db-3", range(12, 13))
    resp = post(base_url, encode_write_request(series))
    assert resp.status_code == 400
    assert "older than the last step" in resp.json()["error"]
    assert service.stats.counters.get("samples", "out_of_order") == 38
    view = next(v for v in service.engine.views() if v.entity == "db-3")
    assert view.timestamp == (T0_MS + 12 * 1000) / 1000


def test_series_without_entity_or_unknown_signal_are_ignored(base_url: str, service: DetectionService) -> None:
    series = [
        ({"__name__": "node_load1", "instance": "db-4"}, [(T0_MS, 1.0)]),
        ({"__name__": "smd_m00", "job": "no-instance-label"}, [(T0_MS, 1.0)]),
    ]
    assert post(base_url, encode_write_request(series)).status_code == 204
    assert service.stats.counters.get("samples", "ignored") == 1
    assert service.stats.counters.get("samples", "no_entity") == 1
    assert service.engine.entity_count() == 0


def test_no_model_accepts_and_counts_the_dropped_samples(settings, base_url: str, service: DetectionService) -> None:  # noqa: ANN001
    # Before the first training run a 5xx would only make Prometheus pile up retries of data that
    # no model can use when it finally arrives; the samples are accepted, dropped and counted.
    for name, _engine in service.engines.items():
        service.engines.remove(name)
    resp = post(base_url, body("db-1", range(0, 3)))
    assert resp.status_code == 204
    assert service.stats.counters.get("samples", "no_model") == 3 * 38  # 3 steps of the 38 SMD signals
    assert service.engine.entity_count() == 0


def test_a_sample_stamped_years_ahead_is_dropped_and_the_entity_goes_on(
    base_url: str, service: DetectionService
) -> None:
    """One hostile sample must not move the entity's stream to year 2036: real samples after it are
    taken (no 400 storm) and scored at once, and the drop is counted."""
    entity = "db-ahead"
    assert post(base_url, body(entity, range(0, 10))).status_code == 204
    ten_years_ms = 10 * 365 * 86_400 * 1000
    ahead = [
        (labels, [(ts + ten_years_ms, v) for ts, v in samples])
        for labels, samples in step_series(entity, range(10, 11))
    ]
    resp = post(base_url, encode_write_request(ahead))
    assert resp.status_code == 400 and "ahead of this receiver" in resp.json()["error"], resp.text
    resp = post(base_url, body(entity, range(10, 20)))
    assert resp.status_code == 204, resp.text
    view = {v.entity: v for v in service.engine.views()}[entity]
    assert view.timestamp == (T0_MS + 19_000) / 1000  # the newest step, scored right away
    metrics = requests.get(f"{base_url}/metrics", timeout=5).text
    assert 'vigil_samples_total{outcome="too_new"}' in metrics
