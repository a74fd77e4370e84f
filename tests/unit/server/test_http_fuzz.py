"""Arbitrary bodies and headers over real HTTP: always a 4xx with a JSON reason, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cramjam
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.detection.realmodel import save_model
from tests.unit.server.livehttp import serve
from tests.unit.server.payloads import HEADERS, body
from vigil.config import load_settings
from vigil.detection.service import DetectionService
from vigil.server import create_app


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home: Path = tmp_path_factory.mktemp("fuzz-home")
    cfg = load_settings(home=home, api_token="t")
    save_model(cfg.models_dir, "smd-a")
    service = DetectionService(cfg, send_alerts=False)
    with serve(create_app(cfg, service=service)) as base:
        # One valid step first, so later fuzzed samples meet a live entity too.
        requests.post(f"{base}/api/v1/write", data=body("db-1", range(0, 2)), headers=HEADERS, timeout=30)
        yield base
    service.close()


content_types = st.sampled_from(
    ["application/x-protobuf", "application/json", "text/plain", "", "application/x-protobuf; proto=x"]
)
encodings = st.sampled_from(["snappy", "gzip", "", "SNAPPY"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048), ctype=content_types, enc=encodings, snappy=st.booleans())
def test_remote_write_never_answers_5xx(url: str, data: bytes, ctype: str, enc: str, snappy: bool) -> None:
    payload = bytes(cramjam.snappy.compress_raw(data)) if snappy else data
    headers = {"Content-Type": ctype, "Content-Encoding": enc, "X-Prometheus-Remote-Write-Version": "0.1.0"}
    resp = requests.post(f"{url}/api/v1/write", data=payload, headers=headers, timeout=30)
    assert resp.status_code in (204, 400, 413, 415), resp.text
    if resp.status_code != 204:
        assert resp.json()["error"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=8),
        lambda c: (
            st.lists(c, max_size=4)
            | st.dictionaries(
                st.sampled_from(["instances", "columns", "names", "rows", "data", "dtype", "x"]), c, max_size=4
            )
        ),
        max_leaves=12,
    )
)
def test_predict_never_answers_5xx(url: str, doc: object) -> None:
    # Python's encoder writes NaN/Infinity tokens (requests' json= refuses them): senders do that too.
    body = json.dumps(doc, allow_nan=True)
    resp = requests.post(f"{url}/v1/predict", data=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert resp.status_code in (200, 400, 413, 415), resp.text
    assert resp.json()
