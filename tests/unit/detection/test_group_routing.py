"""A fleet with one model per host: each engine gets only its own host's series.

The model is a real host model from a committed live recording (tests/data/live), copied for two
hosts as ``vigil soak`` and a fleet do; a third host has no model. Without routing every engine
assembled every host's signals and dropped them at scoring, so N hosts cost N x N.
"""

from __future__ import annotations

import time

from tests.unit.detection.test_cardinality import _host_model
from vigil.detection.engine import DetectionEngine
from vigil.detection.group import EngineGroup
from vigil.ingest.remote_write import DecodedSeries
from vigil.registry.store import model_name

HOSTS = ("10.0.0.1:9100", "10.0.0.2:9100")
UNMODELLED = "10.0.0.3:9100"


def test_each_host_engine_assembles_only_its_own_host() -> None:
    group = EngineGroup()
    model = _host_model()
    for host in HOSTS:
        engine = DetectionEngine(step_s=1.0)
        engine.set_model(model)
        engine.entity_filter = lambda entity, n=model_name(host): model_name(entity) == n
        group.add(model_name(host), engine)
    now = time.time()
    t_ms = int(now * 1000) // 1000 * 1000 - 5_000
    steps = [t_ms + 1000 * k for k in range(3)]
    batch = [
        DecodedSeries("node_load1", {"__name__": "node_load1", "instance": host, "job": "node"}, steps, [0.5] * 3)
        for host in (*HOSTS, UNMODELLED)
    ] + [DecodedSeries("up", {"__name__": "up", "instance": HOSTS[0], "job": "node"}, steps, [1.0] * 3)]

    counts = group.ingest(batch, received_at=now)

    assert counts.accepted == 3 * len(HOSTS)  # each host's samples once, by its own engine
    assert counts.no_model == 3  # the host without a model
    assert counts.ignored == 3  # `up` is no signal of any entity
    for host in HOSTS:
        engine = group.get(model_name(host))
        assert engine is not None and engine.catalog_kind == "host"
        assert {v.entity for v in engine.views()} <= {host}
