"""Drift on real data with a real model: SMD machine-1-4, model trained on the first half of train.

The held-back train rows right after the training half are ordinary days: no drift of inputs,
score or alert rate. Test rows 4320-5760 hold the labelled event 5626-5679 and a shift in half the
signals: inputs and calibrated scores drift. (Numbers: docs/training.md, "Drift".)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.registry.support import FAST_PARAMS
from vigil.datasets import load_smd_like
from vigil.detectors.pipeline import AnomalyPipeline
from vigil.training.drift_check import replay
from vigil.training.train import build_drift_reference

pytestmark = pytest.mark.slow

WINDOW = 1440


def test_model_trained_on_first_half_drifts_on_shifted_test_segment_only(data_dir: Path) -> None:
    split = load_smd_like(data_dir / "smd", "machine-1-4")
    half = len(split.train) // 2
    train = split.train.iloc[:half]
    model = AnomalyPipeline(seed=0, **FAST_PARAMS).fit(train)  # type: ignore[arg-type]
    reference = build_drift_reference(model, train, WINDOW)
    assert reference.window == WINDOW and reference.score is not None

    held = split.train.iloc[half + 60 : half + 60 + WINDOW]
    quiet = replay(reference, held, scores=model.score_frame(held))
    assert quiet.ready and not quiet.drifted, quiet.reasons
    assert quiet.drifted_fraction < 0.1 and not quiet.score_drift

    shifted = split.test.iloc[4320:5760]
    loud = replay(reference, shifted, scores=model.score_frame(shifted))
    assert loud.drifted and {"features", "score"} <= set(loud.reasons)
    assert loud.drifted_fraction > 0.4 and loud.score_psi > 1.0
