from __future__ import annotations

import numpy as np
import pytest

from vigil.datasets import Split
from vigil.drift import Baseline, DriftReference, Reference, ks_statistic, psi


def test_identical_data_has_no_drift(smd_split: Split) -> None:
    x = smd_split.train["m00"].to_numpy()
    ref = Reference.from_samples(x)
    assert psi(ref, x) == pytest.approx(0.0, abs=1e-9)
    assert ks_statistic(ref, x) < 0.01


def test_shifted_segment_has_large_psi(smd_split: Split, half: int) -> None:
    # m15 (1-based dim 16) is one of the columns named by the interpretation of event 5626-5679.
    ref = Reference.from_samples(smd_split.train["m15"].to_numpy()[:half])
    held = smd_split.train["m15"].to_numpy()[half + 60 : half + 1500]
    shifted = smd_split.test["m15"].to_numpy()[4320:5760]
    assert psi(ref, shifted) > 0.25 > psi(ref, held)


def test_zero_inflated_signal_keeps_its_zeros_apart(smd_split: Split, half: int) -> None:
    # m12 is 0 in 99% of training rows; a point bin at 0 keeps "more non-zeros" visible.
    x = smd_split.train["m12"].to_numpy()[:half]
    ref = Reference.from_samples(x)
    assert ref.probs[1] == pytest.approx(np.mean(x == 0.0))
    more_nonzero = np.sort(x)[::-1][: len(x) // 10]  # the largest real values of the same column
    assert psi(ref, more_nonzero) > 0.25


def test_tied_values_and_empty_input(smd_split: Split) -> None:
    # A column that never moves gets one point bin holding everything, not duplicated empty bins.
    flat = next(c for c in smd_split.train.columns if smd_split.train[c].nunique() == 1)
    ref = Reference.from_samples(smd_split.train[flat].to_numpy())
    assert len(ref.edges) == 2 and max(ref.probs) == pytest.approx(1.0)
    assert psi(ref, smd_split.train[flat].to_numpy()) == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(psi(ref, np.array([np.nan])))


def test_reference_round_trips(smd_split: Split) -> None:
    cols = {c: smd_split.train[c].to_numpy()[:3000] for c in ["m00", "m01"]}
    ref = DriftReference.fit(cols, window=500, scores=cols["m00"], alarms=cols["m01"] > 0.5)
    again = DriftReference.from_dict(ref.to_dict())
    assert again == ref
    assert isinstance(again.features["m00"], Baseline) and again.window == 500


def test_natural_drift_is_measured_on_training_windows(smd_split: Split, half: int) -> None:
    # Trending signals drift within training already; their limit must sit above the floor.
    ref = DriftReference.fit({c: smd_split.train[c].to_numpy()[:half] for c in smd_split.train.columns}, window=1440)
    naturals = [b.natural_psi for b in ref.features.values()]
    assert max(naturals) > 0.25 and min(naturals) >= 0.0
