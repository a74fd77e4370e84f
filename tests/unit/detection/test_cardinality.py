"""A sender inventing 200,000 `instance` values leaves the engine's memory bounded by its caps.

The model is a real host model from a committed live recording (tests/data/live), served on the
catalog path that trained models use; the samples are node_exporter series names with invented
label values, as a hostile or broken sender (churning container hosts) would send them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vigil.detection.engine import DetectionEngine, LoadedModel
from vigil.detection.fast import compile_model
from vigil.ingest.remote_write import DecodedSeries
from vigil.registry.bundle import load_bundle

LIVE = Path(__file__).resolve().parents[2] / "data" / "live"
INSTANCES = 200_000
MAX_ENTITIES = 2_000
# Measured 2026-12-03 on this 2-core machine: +136 MB for 2,000 host entities with their streams
# (about 68 KB each), then nothing more for the other 198,000 instances.
RSS_BOUND_MB = 250
GROWTH_PAST_CAP_MB = 32


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _host_model() -> LoadedModel:
    bundle = next(p for p in sorted((LIVE / "quick-seed18-2026-12-03").glob("models/*/*")) if "19100" in p.parent.name)
    model = load_bundle(bundle)
    scorer, info = compile_model(model)
    return LoadedModel("1", "host@1", model, scorer, time.time(), bool(info.get("fast")))


@pytest.mark.slow
def test_two_hundred_thousand_instances_leave_memory_bounded() -> None:
    engine = DetectionEngine(step_s=1.0, max_entities=MAX_ENTITIES)
    engine.set_model(_host_model())
    now = time.time()
    t_ms = int(now * 1000) // 1000 * 1000 - 5_000
    base = _rss_mb()
    limited = accepted = 0
    at_cap = base
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
        if (chunk + 1) * 1000 == 2 * MAX_ENTITIES:
            at_cap = _rss_mb()
    end = _rss_mb()
    print(
        f"\n{INSTANCES} instances: {accepted} samples taken, {limited} refused; RSS +{at_cap - base:.0f} MB "
        f"once {MAX_ENTITIES} entities were held, +{end - at_cap:.0f} MB for the remaining instances"
    )
    assert accepted == 3 * MAX_ENTITIES and limited == 3 * (INSTANCES - MAX_ENTITIES)
    assert engine.entity_count() <= MAX_ENTITIES
    assert end - at_cap < GROWTH_PAST_CAP_MB, "memory kept growing past the entity cap"
    assert end - base < RSS_BOUND_MB, f"RSS grew {end - base:.0f} MB for {MAX_ENTITIES} capped entities"
