"""A sender inventing 200,000 `instance` values leaves the engine's memory bounded by its caps.

The model is a real host model from a committed live recording (tests/data/live), served on the
catalog path that trained models use; the samples are node_exporter series names with invented
label values, as a hostile or broken sender (churning container hosts) would send them.
"""

from __future__ import annotations

import time
from pathlib import Path

from vigil.detection.engine import DetectionEngine, LoadedModel
from vigil.detection.fast import compile_model
from vigil.ingest.remote_write import DecodedSeries
from vigil.registry.bundle import load_bundle

LIVE = Path(__file__).resolve().parents[2] / "data" / "live"
INSTANCES = 200_000
MAX_ENTITIES = 2_000
# Measured 2026-12-03 on this 2-core machine: ~60 MB for 2,000 host entities with their streams.
# The bound leaves room for allocator noise, and is far below what 200,000 entities would take.
RSS_BOUND_MB = 250


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _host_model() -> LoadedModel:
    bundle = next(p for p in sorted(LIVE.glob("*/models/*/*")) if "19100" in p.parent.name)
    model = load_bundle(bundle)
    scorer, info = compile_model(model)
    return LoadedModel("1", "host@1", model, scorer, time.time(), bool(info.get("fast")))


def test_two_hundred_thousand_instances_leave_memory_bounded() -> None:
    engine = DetectionEngine(step_s=1.0, max_entities=MAX_ENTITIES)
    engine.set_model(_host_model())
    now = time.time()
    t_ms = int(now * 1000) // 1000 * 1000 - 5_000
    base = _rss_mb()
    limited = accepted = 0
    for chunk in range(INSTANCES // 1000):
        batch = [
            DecodedSeries(
                "node_load1",
                {"__name__": "node_load1", "instance": f"10.{chunk}.{i // 250}.{i % 250}:9100", "job": "node"},
                [t_ms, t_ms + 1000, t_ms + 2000],
                [0.5, 0.6, 0.7],
            )
            for i in range(1000)
        ]
        counts = engine.ingest(batch, received_at=now)
        limited += counts.entity_limit
        accepted += counts.accepted
    grown = _rss_mb() - base
    print(f"\n{INSTANCES} instances: {accepted} samples taken, {limited} refused, RSS +{grown:.0f} MB")
    assert accepted == 3 * MAX_ENTITIES and limited == 3 * (INSTANCES - MAX_ENTITIES)
    assert engine.entity_count() <= MAX_ENTITIES
    assert grown < RSS_BOUND_MB, f"RSS grew {grown:.0f} MB for {MAX_ENTITIES} capped entities"
