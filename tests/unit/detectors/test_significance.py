"""Practical significance and the live threshold: hand-computed arithmetic, then a real SMD slice."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from vigil.detectors.calibration import MAX_SURPRISAL
from vigil.detectors.pipeline import AnomalyPipeline
from vigil.detectors.significance import PracticalSignificance
from vigil.detectors.threshold import LiveThreshold
from vigil.errors import DataError

SMALL = {"iforest": {"n_estimators": 40}, "ocsvm": {"max_train": 600}, "autoencoder": {"epochs": 2, "hidden": 16}}


def test_direction_minimum_and_ratio() -> None:
    rules = {
        "cpu": {"min": 0.2, "direction": "up"},
        "free": {"min": 0.05, "direction": "down"},
        "rps": {"min": 1.0, "ratio": 0.5, "direction": "both"},
    }
    ps = PracticalSignificance(rules).fit(["cpu", "free", "rps", "other"], [0.1, 0.5, 10.0, 3.0])
    assert ps.minimum_[2] == 5.0  # 0.5 x its usual 10 rps beats the 1 rps floor
    row = np.array([0.29, 0.46, 14.0, 3.0])  # every ruled signal inside its band
    assert not ps.significant(row, [0, 1, 2])
    assert ps.significant(np.array([0.31, 0.5, 10.0, 3.0]), [0])  # CPU +21 points
    assert not ps.significant(np.array([0.0, 0.5, 10.0, 3.0]), [0])  # CPU falling is nobody's incident
    assert ps.significant(np.array([0.1, 0.44, 10.0, 3.0]), [1])  # free space down 6 points
    assert not ps.significant(np.array([0.1, 0.9, 10.0, 3.0]), [1])  # more free space is fine
    assert ps.significant(np.array([0.1, 0.5, 4.9, 3.0]), [2])  # traffic halved
    assert ps.significant(row, [3])  # no rule: any deviation counts
    assert not ps.significant(np.array([np.nan, 0.5, 10.0, 3.0]), [0])  # unknown is not a deviation
    assert not ps.significant(row, [])  # nothing attributed, nothing to page about


def test_minimum_scales_with_the_usual_level() -> None:
    ps = PracticalSignificance({"latency_p99": {"min": 0.05, "ratio": 1.0, "direction": "up", "unit": "seconds"}})
    ps.fit(["latency_p99"], [0.2])
    assert ps.units_ == ["seconds"]
    assert not ps.moved([0.39], 0)  # +190 ms over a usual 200 ms: under the doubling the ratio asks for
    assert ps.moved([0.41], 0)


def test_past_the_training_range_by_more_than_the_minimum() -> None:
    rules = {
        "mem": {"min": 0.1, "direction": "up", "range": True},
        "free": {"min": 0.05, "direction": "down", "range": True},
        "rx": {"min": 4.0, "direction": "both", "range": True},
        "cpu": {"min": 0.2, "direction": "up"},  # bursts: left to the ensemble
    }
    ps = PracticalSignificance(rules).fit(
        ["mem", "free", "rx", "other", "cpu"],
        [0.08, 0.5, 10.0, 3.0, 0.1],
        low=[0.07, 0.45, 6.0, 1.0, 0.0],
        high=[0.12, 0.55, 14.0, 5.0, 0.3],
    )
    # Memory 8 points past its highest (under the minimum); no rule; CPU 70 points past its highest,
    # but a signal that bursts takes no part.
    assert ps.out_of_range([0.2, 0.5, 10.0, 99.0, 1.0]) == []
    assert ps.out_of_range([0.23, 0.5, 10.0, 3.0, 0.1]) == [0]  # 11 points past the highest it ever had
    assert ps.out_of_range([0.0, 0.5, 10.0, 3.0, 0.1]) == []  # less memory than ever is nobody's incident
    assert ps.out_of_range([0.1, 0.39, 10.0, 3.0, 0.1]) == [1]  # free space 6 points under its lowest
    assert ps.out_of_range([0.1, 0.5, 1.9, 3.0, 0.1]) == [2]  # both ways: 4.1 under the lowest
    assert ps.out_of_range([0.1, 0.5, 18.1, 3.0, 0.1]) == [2]
    assert ps.out_of_range([np.nan, 0.5, 10.0, 3.0, 0.1]) == []  # unknown is not a deviation
    assert PracticalSignificance(rules).fit(["mem"], [0.08]).out_of_range([5.0]) == []  # no range known
    with pytest.raises(DataError, match="high"):
        PracticalSignificance(rules).fit(["mem"], [0.08], low=[0.0], high=[0.1, 0.2])


def test_only_capacity_levels_get_the_range_rule_and_vigil_yml_can_change_it() -> None:
    from vigil.config import SignalRule
    from vigil.ingest.catalog import signal_minimums

    rules = signal_minimums(["memory_used_ratio", "fs_free_ratio", "cpu_busy", "load1", "latency_p99"])
    assert [n for n, r in rules.items() if r["range"]] == ["memory_used_ratio", "fs_free_ratio"]
    off = signal_minimums(["memory_used_ratio"], entity_overrides={"memory_used_ratio": SignalRule(range=False)})
    assert off["memory_used_ratio"]["range"] is False and off["memory_used_ratio"]["min"] == 0.1


def test_bad_rules_are_refused() -> None:
    with pytest.raises(DataError, match="direction"):
        PracticalSignificance({"a": {"direction": "sideways"}}).fit(["a"], [1.0])
    with pytest.raises(DataError, match="negative"):
        PracticalSignificance({"a": {"min": -1}}).fit(["a"], [1.0])
    no_window, no_direction = {"direction": "up"}, {"direction": "both", "window_s": 5}
    for rule in (no_window, no_direction):
        rule["repeated_level"] = 0.2
        with pytest.raises(DataError, match="repeated_level needs"):
            PracticalSignificance({"a": rule}).fit(["a"], [1.0])


def test_live_threshold_quantile_cap_and_alarmed_steps() -> None:
    live = LiveThreshold(base=3.0, rate=0.1, half_life_steps=1e9, min_steps=50, max_raise=2.0, bin_width=0.1)
    for _ in range(49):
        live.update(4.5, alarmed=False)
    assert live.value == 3.0  # not enough quiet steps yet: the training threshold
    for _ in range(100):
        live.update(30.0, alarmed=True)  # alarmed steps never teach it
    assert live.learned_steps == 49
    for _ in range(15):
        live.update(4.5, alarmed=False)
    assert live.value == pytest.approx(4.6)  # upper edge of the bin holding 4.5
    for _ in range(1000):
        live.update(MAX_SURPRISAL, alarmed=False)
    assert live.value == 5.0  # capped at base + max_raise
    for _ in range(100):
        live.update(0.0, alarmed=False)
    assert live.value == 5.0  # without forgetting, 90 % of what it saw is still at the cap


def test_live_threshold_forgets_with_its_half_life() -> None:
    live = LiveThreshold(base=1.0, rate=0.1, half_life_steps=10, min_steps=1, max_raise=10.0, refresh_every=1)
    for _ in range(200):
        live.update(8.0, alarmed=False)
    assert live.value == pytest.approx(8.05)
    for _ in range(100):  # ten half-lives: the old level weighs 2**-10 of the new one
        live.update(2.0, alarmed=False)
    assert live.value == pytest.approx(2.05)
    state = json.loads(json.dumps(live.state_dict()))
    other = LiveThreshold(base=1.0, rate=0.1, half_life_steps=10, min_steps=1, max_raise=10.0, refresh_every=1)
    other.load_state(state)
    for z in (2.0, 9.0, 2.0):
        live.update(z, alarmed=False)
        other.update(z, alarmed=False)
        assert live.value == other.value


@pytest.fixture(scope="module")
def gated(smd_frames: tuple[pd.DataFrame, pd.DataFrame, np.ndarray]) -> AnomalyPipeline:
    train = smd_frames[0]
    # Half the columns get a rule a real incident can pass (10 % of their training spread); the
    # threshold learns from 50 quiet steps on.
    rules = {c: {"min": 0.1 * float(train[c].std()), "direction": "both"} for c in train.columns[::2]}
    # The gate alone: the range rule has a test of its own.
    return AnomalyPipeline(
        seed=1,
        detector_params=SMALL,
        signal_minimums=rules,
        out_of_range_alarms=False,
        live_threshold=True,
        live_min_s=50 * 60,
    ).fit(train)


def test_stream_equals_batch_with_minimums_and_live_threshold(gated: AnomalyPipeline, smd_frames) -> None:  # noqa: ANN001
    _, test, _ = smd_frames
    part = test.iloc[:400]  # 170 quiet rows, then the slice's incidents
    batch = gated.score_frame(part)
    stream = gated.new_stream()
    steps, thresholds = [], []
    for ts, row in part.iterrows():
        steps.append(stream.update(ts.timestamp(), row.to_dict()))
        thresholds.append(stream.threshold_z)
    assert [s.alarm for s in steps] == batch["alarm"].tolist()
    assert [s.above_threshold for s in steps] == batch["above_threshold"].tolist()
    assert min(thresholds) >= gated.threshold_z_ < max(thresholds)  # it learned from the quiet rows
    assert batch["alarm"].any()


def _stream_equals_batch(model: AnomalyPipeline, part: pd.DataFrame) -> pd.DataFrame:
    """Score ``part`` in batch and step by step; the above-threshold and alarm states agree. Returns the batch."""
    batch = model.score_frame(part)
    stream = model.new_stream()
    steps = [stream.update(ts.timestamp(), row.to_dict()) for ts, row in part.iterrows()]
    assert [s.above_threshold for s in steps] == batch["above_threshold"].tolist()
    assert [s.alarm for s in steps] == batch["alarm"].tolist()
    return batch


def _restored_stream_agrees(model: AnomalyPipeline, part: pd.DataFrame, batch: pd.DataFrame) -> None:
    """A stream restored halfway from its saved state goes on as the batch scoring of ``part`` does."""
    half = len(part) // 2
    first = model.new_stream()
    for ts, row in part.iloc[:half].iterrows():
        first.update(ts.timestamp(), row.to_dict())
    restored = model.new_stream()
    restored.load_state(copy.deepcopy(first.state_dict()))
    rest = [restored.update(ts.timestamp(), row.to_dict()) for ts, row in part.iloc[half:].iterrows()]
    assert [s.above_threshold for s in rest] == batch["above_threshold"].tolist()[half:]


def test_stream_equals_batch_with_the_range_rule(smd_frames) -> None:  # noqa: ANN001
    train, test, _ = smd_frames
    rules = {c: {"min": float(train[c].std()), "direction": "both", "range": True} for c in train.columns[::2]}
    model = AnomalyPipeline(
        seed=1, detector_params=SMALL, signal_minimums=rules, live_threshold=True, live_min_s=50 * 60
    ).fit(train)
    part = test.iloc[:400]
    batch = _stream_equals_batch(model, part)
    # Some steps are above only because a signal left its training range: the ensemble was not surprised.
    assert (batch["above_threshold"] & (batch["score"] <= model.threshold_)).any()
    unranged = copy.copy(model)
    unranged.out_of_range_alarms = False
    assert not (unranged.score_frame(part)["above_threshold"] & (batch["score"] <= model.threshold_)).any()


def test_stream_equals_batch_with_the_sustained_rule(smd_frames) -> None:  # noqa: ANN001
    train, test, _ = smd_frames
    rules = {c: {"min": float(train[c].std()), "direction": "both", "sustained": True} for c in train.columns[::2]}
    model = AnomalyPipeline(
        seed=1, detector_params=SMALL, signal_minimums=rules, out_of_range_alarms=True, sustained_window=10
    ).fit(train)
    part = test.iloc[:400]
    batch = _stream_equals_batch(model, part)
    # Some steps are above only because a level held past its training range for most of 10 steps.
    by_level = batch["above_threshold"] & (batch["score"] <= model.threshold_)
    assert by_level.any()
    _restored_stream_agrees(model, part, batch)  # it carries the longer window on
    unsustained = copy.copy(model)
    unsustained.sustained_window = 0
    assert not (unsustained.score_frame(part)["above_threshold"] & (batch["score"] <= model.threshold_)).any()


def test_stream_equals_batch_with_longer_judging_windows(smd_frames) -> None:  # noqa: ANN001
    """A rule's ``window_s`` judges that signal on its median over that span, counted only while its
    recent (3-step) median shows the deviation too, in batch, in a stream and in a stream restored from
    its saved state alike; and it changes which steps count."""
    train, test, _ = smd_frames
    step_s = 60.0  # SMD's rows are a minute apart
    base = {c: {"min": float(train[c].std()), "direction": "both"} for c in train.columns}
    longer = {c: {**rule, "window_s": 15 * step_s} if i % 2 else rule for i, (c, rule) in enumerate(base.items())}
    model = AnomalyPipeline(seed=1, detector_params=SMALL, signal_minimums=longer, live_threshold=True).fit(train)
    assert sorted(set(model.judge_windows_.tolist())) == [3, 15]
    part = test.iloc[1200:1600]  # holds steps whose 3-step median moved and 15-step median did not
    batch = _stream_equals_batch(model, part)
    _restored_stream_agrees(model, part, batch)
    plain = copy.copy(model)
    plain.judge_windows_ = np.full(len(model.metric_names_), 3)
    assert (plain.score_frame(part)["above_threshold"] != batch["above_threshold"]).any()


def test_stream_equals_batch_with_a_repeated_level(smd_frames) -> None:  # noqa: ANN001
    """A ``repeated_level`` judges a signal on the second most extreme value of its window when two of
    its steps reach that level, in batch, in a stream and in a restored stream alike; and it changes
    which steps count."""
    train, test, _ = smd_frames
    step_s = 60.0
    rules = {
        c: {"min": float(train[c].std()), "direction": "up", "window_s": 5 * step_s}
        | ({"repeated_level": float(train[c].quantile(0.95))} if i % 2 else {})
        for i, c in enumerate(train.columns)
    }
    model = AnomalyPipeline(seed=1, detector_params=SMALL, signal_minimums=rules, live_threshold=True).fit(train)
    assert model.significance_.repeats()  # every other signal
    part = test.iloc[1200:1600]
    batch = _stream_equals_batch(model, part)
    _restored_stream_agrees(model, part, batch)
    plain = copy.copy(model)
    plain.significance_ = copy.deepcopy(model.significance_)
    plain.significance_.repeated_level_[:] = np.nan
    assert (plain.score_frame(part)["above_threshold"] != batch["above_threshold"]).any()


def test_minimums_nobody_can_pass_silence_every_alarm(gated: AnomalyPipeline, smd_frames) -> None:  # noqa: ANN001
    _, test, _ = smd_frames
    deaf = copy.copy(gated)
    rules = {c: {"min": 1e12, "direction": "both"} for c in gated.metric_names_}
    deaf.significance_ = PracticalSignificance(rules).fit(gated.metric_names_, gated.signal_median_[: len(rules)])
    out = deaf.score_frame(test.iloc[:400])
    assert not out["alarm"].any() and not out["above_threshold"].any()
    assert (out["score"] > deaf.threshold_).any()  # still surprised: only the gate holds it back


def test_without_rules_the_gate_changes_nothing(smd_frames) -> None:  # noqa: ANN001
    train, test, _ = smd_frames
    plain = AnomalyPipeline(seed=1, detector_params=SMALL).fit(train)
    out = plain.score_frame(test.iloc[:400])
    np.testing.assert_array_equal(out["above_threshold"], out["score"] > plain.threshold_)


def test_explanations_lead_with_the_signals_that_moved_enough(gated: AnomalyPipeline, smd_frames) -> None:  # noqa: ANN001
    _, test, _ = smd_frames
    part = test.iloc[:400]
    row = int(np.flatnonzero(gated.score_frame(part)["alarm"].to_numpy())[0])
    feats = gated.features_frame(part).to_numpy()[row]
    vals = part[gated.metric_names_].to_numpy(dtype=np.float64)[row]
    names, medians = gated.metric_names_, gated.signal_median_[: len(gated.metric_names_)]

    def explained_with(rules: dict) -> list[str]:
        model = copy.copy(gated)
        model.significance_ = PracticalSignificance(rules).fit(names, medians)
        return [c.metric for c in model.contributions(feats, vals)]

    by_share = explained_with({})
    harmless = by_share[0]  # the largest share, declared too small a move to matter
    rules = {n: {"min": 1e12 if n == harmless else 0.0, "direction": "both"} for n in names}
    named = explained_with(rules)
    assert harmless not in named and named[0] == by_share[1]
    nobody_moved = {n: {"min": 1e12, "direction": "both"} for n in names}
    assert explained_with(nobody_moved) == by_share  # no signal passes: the shares decide
