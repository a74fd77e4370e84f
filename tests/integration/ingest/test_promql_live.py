"""The PromQL client against a real Prometheus and a real VictoriaMetrics scraping node_exporter."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.integration.ingest.conftest import Service, wait_for_samples
from vigil.errors import BadRequest
from vigil.prometheus import PromClient
from vigil.promql import selector

pytestmark = pytest.mark.integration

INJECTION = '"} or vector(1) #'


@pytest.fixture(scope="module", params=["prometheus", "victoria_metrics"])
def backend(request: pytest.FixtureRequest) -> Service:
    svc: Service = request.getfixturevalue(request.param)
    wait_for_samples(svc.url, 'node_load1{job="node"}', 15)
    return svc


def test_instant_query_and_metadata(backend: Service, node_exporter: Service) -> None:
    client = PromClient(backend.url)
    instance = node_exporter.url.removeprefix("http://")
    [sample] = client.query(selector("node_load1", job="node"))
    assert sample.labels["instance"] == instance and sample.value >= 0
    assert "instance" in client.labels()
    assert instance in client.label_values("instance")
    [series] = client.series([selector("node_load1", instance=instance)])
    assert series["__name__"] == "node_load1"


def test_injected_label_value_matches_nothing(backend: Service) -> None:
    client = PromClient(backend.url)
    assert client.query(selector("up", instance=INJECTION)) == []
    # Pasted without escaping, the same value rewrites the query into `vector(1)`: the attack.
    raw = client.query('up{instance="' + INJECTION + '"}')
    assert [(s.labels, s.value) for s in raw] == [({}, 1.0)]


def test_chunked_range_query_equals_one_query(backend: Service) -> None:
    client = PromClient(backend.url)
    end = float(int(time.time()) - 2)
    start = end - 12
    whole = {s.key: s for s in client.query_range('{__name__=~"node_load1|node_cpu_seconds_total"}', start, end, 1)}
    client.max_points = 4  # forces 4 requests of at most 4 points each
    parts = {s.key: s for s in client.query_range('{__name__=~"node_load1|node_cpu_seconds_total"}', start, end, 1)}
    assert whole.keys() == parts.keys() and len(whole) > 2
    for key, s in whole.items():
        np.testing.assert_array_equal(parts[key].timestamps, s.timestamps)
        np.testing.assert_array_equal(parts[key].values, s.values)
        assert len(np.unique(s.timestamps)) == len(s.timestamps)


def test_rejected_query_is_a_bad_request_with_the_server_message(backend: Service) -> None:
    with pytest.raises(BadRequest, match="rejected query"):
        PromClient(backend.url).query("sum(")
