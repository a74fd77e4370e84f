"""The campaign's plan: seeded order, every type repeated, profiles that fit their budgets, labels kept apart."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil.validation.labels import labels_for_index, last_campaign_end, save_labelset, validation_windows
from vigil.validation.profiles import FAULT_TYPES, PROFILES, WEAK_TYPES, schedule
from vigil.validation.scoring import CHAT_GRACE_S


def test_schedule_is_reproducible_from_the_seed_and_complete() -> None:
    full = PROFILES["full"]
    a, b, c = schedule(full, 42), schedule(full, 42), schedule(full, 43)
    assert a == b and a != c
    weak = {t: full.weak_repeats for t in WEAK_TYPES}
    pairs = {f"{first}+{second}": 1 for first, second in full.overlaps}
    assert Counter(a) == {**{t: full.repeats for t in FAULT_TYPES}, **weak, **pairs}
    assert all(t.removesuffix("_weak") in FAULT_TYPES for t in WEAK_TYPES) and full.weak_repeats >= 1
    assert Counter(schedule(PROFILES["quick"], 18)) == {t: 1 for t in FAULT_TYPES}  # no time for weak faults


def test_profiles_leave_room_for_recovery_and_quick_fits_15_minutes() -> None:
    for prof in PROFILES.values():
        assert prof.tail_s < prof.gap_s  # a late anomaly of one fault never lands in the next fault
        assert prof.tail_s + CHAT_GRACE_S < prof.gap_s  # nor a late chat message
    q = PROFILES["quick"]
    faults_s = q.gap_s + q.repeats * len(FAULT_TYPES) * (q.fault_s + q.gap_s)
    # stack start ~20 s, archive catch-up ~5 s, training ~10 s idle (~50 s loaded), report ~15 s.
    assert q.baseline_s + faults_s + q.warmup_timeout_s + q.settle_max_s + 90 <= 15 * 60


def test_only_validation_runs_are_offered_to_model_selection(tmp_path: Path) -> None:
    save_labelset(tmp_path, "run-a", "test", [{"type": "cpu_saturation", "start": 10.0, "end": 20.0}], period=(0, 50))
    save_labelset(tmp_path, "run-b", "validation", [{"type": "db_outage", "start": 70.0, "end": 80.0}], period=(60, 90))
    assert validation_windows(tmp_path) == [{"type": "db_outage", "start": 70.0, "end": 80.0}]
    assert last_campaign_end(tmp_path) == 90.0
    with pytest.raises(ValueError):
        save_labelset(tmp_path, "run-c", "training", [], period=(0, 1))


def test_labels_for_index_with_timestamps_and_datetimes() -> None:
    windows = [{"start": 10.0, "end": 12.0}]
    assert labels_for_index(np.arange(8.0, 14.0), windows).tolist() == [0, 0, 1, 1, 0, 0]
    idx = pd.date_range(pd.Timestamp(8, unit="s", tz="UTC"), periods=6, freq="1s")
    assert labels_for_index(idx, windows).tolist() == [0, 0, 1, 1, 0, 0]
    assert labels_for_index(idx.tz_localize(None), windows).tolist() == [0, 0, 1, 1, 0, 0]


def test_the_full_profile_overlaps_host_faults_with_service_faults_past_the_join_window() -> None:
    from vigil.config import Settings
    from vigil.validation.profiles import HOST_FAULTS, OVERLAP, overlapped

    full = PROFILES["full"]
    order = schedule(full, 42)
    pairs = [overlapped(e) for e in order if OVERLAP in e]
    assert len(pairs) == len(full.overlaps) >= 3
    assert sum(len(overlapped(e)) for e in order) == 40
    assert all(first not in HOST_FAULTS and second in HOST_FAULTS for first, second in pairs)
    # The second fault starts after serving's join window, while the first is still on.
    assert Settings().serving.incident_join_s < full.overlap_offset_s < full.fault_s
    assert all(OVERLAP not in e for e in schedule(PROFILES["quick"], 18))
