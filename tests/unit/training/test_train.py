"""train_entity end to end on a real SMD slice, against a real embedded MLflow store."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from tests.unit.registry.support import FAST_PARAMS, SMD_SLICE
from vigil.registry import ModelRegistry
from vigil.training import TrainConfig, from_dataset, train_entity

CONFIG = TrainConfig(n_folds=2, gap=30, model_params=dict(FAST_PARAMS))


def test_train_registers_promotes_first_and_is_deterministic(registry: ModelRegistry) -> None:
    data = next(from_dataset(SMD_SLICE, ["machine-1-3"], max_rows=600))
    first = train_entity(registry, data, CONFIG)
    assert (first.name, first.version, first.promoted) == ("machine-1-3", "1", True)
    assert first.decision == "no champion yet" and first.champion_metrics is None
    assert registry.champion_version("machine-1-3") == "1"
    for key in ("cv_alert_rate", "cv_calibration_drift", "cv_score_stability", "holdout_event_f1", "holdout_auc_pr"):
        assert key in first.metrics
    assert len(first.folds) == 2
    # both validation folds lie in the labelled test half; only the second holds its event 392-416
    assert "event_f1" not in first.folds[0] and first.folds[1]["events"] == 1
    assert first.folds[0]["train_rows"] < first.folds[1]["train_rows"]

    reference = registry.bundle_json("machine-1-3", "1", "drift_reference.json")
    assert set(reference["features"]) == set(data.train.columns) and reference["score"]
    assert (registry.fetch("machine-1-3", "1") / "golden.npz").is_file()  # re-scored at every load
    training = registry.bundle_json("machine-1-3", "1", "training.json")
    assert training["window"]["rows"] == "600" and training["data_hash"] == first.data_hash

    second = train_entity(registry, data, replace(CONFIG, promote="never"))
    assert second.version == "2" and not second.promoted
    assert "policy 'never'" in second.decision and second.champion_metrics
    assert second.data_hash == first.data_hash
    assert registry.aliases("machine-1-3") == {"champion": "1", "challenger": "2"}
    # same data + same seed: the same model, score for score
    _, m1 = registry.load("machine-1-3", "1")
    _, m2 = registry.load("machine-1-3", "2")
    pd.testing.assert_frame_equal(m1.score_frame(data.holdout), m2.score_frame(data.holdout))
