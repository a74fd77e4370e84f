"""Step assembly from remote_write samples: completeness, ordering, lateness, counters."""

from __future__ import annotations

import math

from vigil.detection.assembler import CatalogAssembler, IngestCounts, SampleWindow, StepAssembler
from vigil.ingest.remote_write import STALE_NAN, DecodedSeries
from vigil.ingest.stream import SignalAssembler

NOW = 20.0  # the receiver's clock, in the same seconds as the samples' timestamps


def s(name: str, entity: str | None, points: list[tuple[int, float]]) -> DecodedSeries:
    labels = {"__name__": name} | ({"instance": entity} if entity else {})
    return DecodedSeries(name, labels, [p[0] for p in points], [p[1] for p in points])


def test_step_is_emitted_once_complete_and_in_order() -> None:
    asm = StepAssembler(["a", "b"], step_s=1.0, max_lag_steps=3, grace_s=100)
    counts = IngestCounts()
    assert asm.add([s("a", "e", [(1000, 1.0)])], now=NOW, counts=counts) == []
    # Step 2 completes first, but step 1 is still open: nothing may overtake it.
    assert asm.add([s("a", "e", [(2000, 2.0)]), s("b", "e", [(2000, 20.0)])], NOW, counts) == []
    ready = asm.add([s("b", "e", [(1000, 10.0)])], NOW, counts)
    assert [(r.timestamp, r.values) for r in ready] == [(1.0, {"a": 1.0, "b": 10.0}), (2.0, {"a": 2.0, "b": 20.0})]
    assert counts.accepted == 4


def test_incomplete_step_flushes_when_overtaken_or_expired() -> None:
    asm = StepAssembler(["a", "b"], step_s=1.0, max_lag_steps=2, grace_s=5.0)
    counts = IngestCounts()
    asm.add([s("a", "e", [(1000, 1.0)])], NOW, counts)
    ready = asm.add([s("a", "e", [(3000, 3.0)])], NOW, counts)
    assert [r.timestamp for r in ready] == [1.0]
    assert math.isnan(ready[0].values["b"])
    assert asm.flush_due(now=NOW + 4.9) == []
    assert [r.timestamp for r in asm.flush_due(now=NOW + 5.0)] == [3.0]


def test_late_duplicate_and_unusable_samples_are_counted() -> None:
    asm = StepAssembler(["a"], step_s=1.0, max_entities=1)
    counts = IngestCounts()
    asm.add([s("a", "e", [(5000, 1.0)])], NOW, counts)
    asm.add([s("a", "e", [(5000, 1.0), (4000, 1.0)])], NOW, counts)
    asm.add([s("a", None, [(6000, 1.0)]), s("a", "other", [(6000, 1.0)]), s("zzz", "e", [(6000, 1.0)])], NOW, counts)
    ready = asm.add([s("a", "e", [(6000, math.inf)]), s("a", "e", [(7000, STALE_NAN)])], NOW, counts)
    assert (counts.duplicate, counts.out_of_order, counts.no_entity, counts.entity_limit, counts.ignored) == (
        1,
        1,
        1,
        1,
        1,
    )
    assert (counts.non_finite, counts.stale) == (1, 1)
    assert all(math.isnan(r.values["a"]) for r in ready)


def test_counters_become_rates_with_reset_handling() -> None:
    asm = StepAssembler(["req_total"], step_s=1.0)
    counts = IngestCounts()
    out = []
    for k, value in enumerate([100.0, 110.0, 4.0, 10.0]):
        out += asm.add([s("req_total", "e", [(1000 * (k + 1), value)])], NOW, counts)
    rates = [r.values["req_total"] for r in out]
    assert math.isnan(rates[0]) and rates[1:] == [10.0, 4.0, 6.0]  # 110 -> 4 is a reset: the increase is 4


def test_restored_positions_refuse_already_scored_steps() -> None:
    asm = StepAssembler(["a"], step_s=1.0)
    asm.restore_positions({"e": 10.0})
    counts = IngestCounts()
    asm.add([s("a", "e", [(9000, 1.0), (10000, 1.0), (11000, 1.0)])], NOW, counts)
    assert (counts.out_of_order, counts.duplicate, counts.accepted) == (1, 1, 1)


def test_catalog_signals_use_the_ingest_catalog() -> None:
    from vigil.detection.assembler import catalog_kind

    assert catalog_kind(["smd_m00"]) is None
    assert catalog_kind(["load1"]) == "host"
    asm = CatalogAssembler(["load1"], "host", step_s=1.0, grace_s=5.0)
    counts = IngestCounts()
    out = []
    for k, value in enumerate([0.5, 0.7, 0.9]):
        out += asm.add([s("node_load1", "h", [(1000 * (k + 1), value)])], NOW, counts)
    # The first step waits for the next one; then the entity's one series has reported for each
    # step as it arrives, so its step goes out at once.
    assert [(r.entity, r.timestamp, r.values["load1"]) for r in out] == [
        ("h", 1.0, 0.5),
        ("h", 2.0, 0.7),
        ("h", 3.0, 0.9),
    ]
    assert asm.flush_due(now=NOW + 10.0) == []
    asm.add([s("node_load1", "h", [(500, 0.1)])], NOW + 11.0, counts)
    assert counts.out_of_order == 1 and counts.accepted == 3


def test_samples_outside_the_window_are_dropped_and_counted() -> None:
    window = SampleWindow(max_age_s=10.0, max_ahead_s=5.0)
    for asm in (
        StepAssembler(["a"], step_s=1.0, window=window),
        CatalogAssembler(["load1"], "host", step_s=1.0, grace_s=5.0, window=window),
    ):
        name = "a" if isinstance(asm, StepAssembler) else "node_load1"
        counts = IngestCounts()
        points = [(9_000, 1.0), (10_000, 1.0), (25_000, 1.0), (26_000, 1.0), (10**15, 1.0), (0, 1.0)]
        asm.add([s(name, "e", points)], NOW, counts)
        assert (counts.too_old, counts.too_new) == (2, 2), asm


def test_a_sample_ahead_of_the_clock_waits_for_its_step_and_real_ones_keep_flowing() -> None:
    """One sample stamped minutes ahead must not end the stream: later real samples stay in order."""
    step_asm = StepAssembler(["a"], step_s=1.0, max_lag_steps=1)
    cat_asm = CatalogAssembler(["load1"], "host", step_s=1.0, grace_s=5.0)
    for asm, name in ((step_asm, "a"), (cat_asm, "node_load1")):
        counts = IngestCounts()
        asm.add([s(name, "e", [(int(NOW * 1000) + 240_000, 9.0)])], NOW, counts)  # 4 min ahead
        out = []
        for k in range(5):
            t = NOW + k
            out += asm.add([s(name, "e", [(int(t * 1000), 0.5)])], t, counts)
        assert counts.out_of_order == 0 and counts.too_new == 0, (asm, counts)
        assert out and max(r.timestamp for r in out) <= NOW + 5, asm
        assert all(v == 0.5 for r in out for v in r.values.values()), asm


def test_a_long_gap_resumes_at_the_newest_step_instead_of_emitting_every_step() -> None:
    asm = SignalAssembler(step_s=1.0, max_gap_steps=100)
    labels = {"__name__": "node_load1", "instance": "h"}
    assert asm.add(labels, 1_000, 0.5) == []
    assert [s.timestamp for s in asm.add(labels, 2_000, 0.6)] == [1.0]
    steps = asm.add(labels, 1_000_000, 0.7)  # ~17 minutes later
    assert [s.timestamp for s in steps] == [999.0] and asm.skipped_steps == 997


def test_entity_and_series_caps_refuse_and_count() -> None:
    asm = CatalogAssembler(["load1"], "host", step_s=1.0, grace_s=5.0, max_entities=3, max_series_per_entity=2)
    counts = IngestCounts()
    asm.add([s("node_load1", f"h{i}", [(1000, 0.5)]) for i in range(5)], NOW, counts)
    assert (counts.entity_limit, counts.accepted) == (2, 3)
    churn = [
        DecodedSeries("node_load1", {"__name__": "node_load1", "instance": "h0", "veth": f"v{i}"}, [1000], [0.5])
        for i in range(4)
    ]
    asm.add(churn, NOW, counts)
    assert counts.entity_limit == 2 + 3  # h0 already holds one series: one more fits


def test_idle_entities_are_forgotten() -> None:
    for asm, name in (
        (StepAssembler(["a"], step_s=1.0), "a"),
        (CatalogAssembler(["load1"], "host", step_s=1.0, grace_s=5.0), "node_load1"),
    ):
        counts = IngestCounts()
        asm.add([s(name, "old", [(1000, 0.5), (2000, 0.5), (3000, 0.5)])], NOW, counts)
        asm.add([s(name, "new", [(15_000, 0.5), (16_000, 0.5), (17_000, 0.5)])], NOW, counts)
        asm.flush_due(NOW + 10)
        assert asm.forget_idle(before=10.0, now=NOW + 10) == ["old"]
        assert asm.entities() == ["new"]


def test_a_host_models_assembler_holds_no_services() -> None:
    asm = CatalogAssembler(["load1"], "host", step_s=1.0, grace_s=5.0, max_entities=1)
    counts = IngestCounts()
    services = [
        DecodedSeries("demo_http_in_flight_requests", {"__name__": "demo_http_in_flight_requests", "job": f"svc-{i}"},
                      [1000], [1.0])
        for i in range(3)
    ]  # fmt: skip
    asm.add([*services, s("node_load1", "h", [(1000, 0.5)])], NOW, counts)
    assert (counts.ignored, counts.entity_limit, counts.accepted) == (3, 0, 1)  # the one place is the host's


def test_samples_held_ahead_are_released_by_the_idle_sweep_and_dead_series_free_their_place() -> None:
    asm = CatalogAssembler(["load1"], "host", step_s=1.0, grace_s=5.0, max_series_per_entity=2)
    counts = IngestCounts()
    ahead = [(int(NOW * 1000) + 60_000 + i, 0.5) for i in range(50)]  # one step, 60 s ahead, 50 times
    asm.add([s("node_load1", "later", ahead)], NOW, counts)
    assert asm.forget_idle(before=NOW - 1, now=NOW) == []  # held, not idle yet
    assert asm.forget_idle(before=NOW + 61, now=NOW + 70) == []  # released at its step: newest is NOW + 60
    assert asm.forget_idle(before=NOW + 62, now=NOW + 70) == ["later"]
    # A series that stops (a removed interface) frees its place under the cap once a lookback has passed.
    churn = DecodedSeries("node_load1", {"__name__": "node_load1", "instance": "h", "veth": "a"}, [1000], [0.5])
    asm.add([churn, s("node_load1", "h", [(1000, 0.5)])], NOW, counts)
    later = [(t, 0.5) for t in range(2000, 400_000, 1000)]  # 400 s of the other series
    asm.add([s("node_load1", "h", later)], NOW + 400, counts)
    fresh = DecodedSeries("node_load1", {"__name__": "node_load1", "instance": "h", "veth": "b"}, [400_000], [0.5])
    before = counts.entity_limit
    asm.add([fresh], NOW + 400, counts)
    assert counts.entity_limit == before  # veth "a" was dead for a lookback: "b" takes its place


def test_a_target_that_goes_stale_while_others_report_has_its_last_step_flushed() -> None:
    """A crashed target: Prometheus writes stale markers for its series, then nothing. Its stale step
    reaches the engine at once when every series got its marker, and after the grace when one did
    not, even though another entity keeps the feed busy."""
    asm = CatalogAssembler(["load1"], "host", step_s=1.0, grace_s=2.0)
    counts = IngestCounts()
    out = []
    two = [{"__name__": "node_load1", "instance": "half", "cpu": c} for c in ("0", "1")]
    for k in range(1, 4):  # all report at steps 1-3
        halves = [DecodedSeries("node_load1", lbl, [k * 1000], [0.5]) for lbl in two]
        out += asm.add([s("node_load1", "alive", [(k * 1000, 0.5)]), s("node_load1", "dies", [(k * 1000, 0.5)]),
                        *halves], float(k), counts)  # fmt: skip
    # Step 4: "dies" gets its stale marker; of "half", only one series reports, then nothing.
    out += asm.add([s("node_load1", "alive", [(4000, 0.5)]), s("node_load1", "dies", [(4000, STALE_NAN)]),
                    DecodedSeries("node_load1", two[0], [4000], [0.5])], 4.0, counts)  # fmt: skip
    assert [r.timestamp for r in out if r.entity == "dies"] == [1.0, 2.0, 3.0, 4.0]
    for k in range(5, 7):  # within the grace: "half"'s step 4 still waits
        out += asm.add([s("node_load1", "alive", [(k * 1000, 0.5)])], float(k), counts)
        out += asm.flush_due(float(k))
    assert [r.timestamp for r in out if r.entity == "half"] == [1.0, 2.0, 3.0]
    asm.add([s("node_load1", "alive", [(7000, 0.5)])], 7.0, counts)
    flushed = asm.flush_due(7.0)
    assert [(r.entity, r.timestamp) for r in flushed] == [("half", 4.0)]
    dead = [r for r in out if r.entity == "dies" and r.timestamp == 4.0]
    assert math.isnan(dead[0].values["load1"]) and counts.stale == 1
    assert asm.flush_due(8.0) == []  # emitted once
