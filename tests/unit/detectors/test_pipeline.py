"""AnomalyPipeline on a real SMD slice: the ScoringModel contract, stream == batch, save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from vigil.contracts import ScoringModel, StepResult
from vigil.detectors.combination import to_unit
from vigil.detectors.pipeline import AnomalyPipeline
from vigil.errors import DataError, ModelError
from vigil.events import Contribution

SMALL = {
    "iforest": {"n_estimators": 40},
    "lof": {"max_train": 600},
    "ocsvm": {"max_train": 600},
    "autoencoder": {"epochs": 3, "max_train": 1500, "hidden": 32},
}


@pytest.fixture(scope="module")
def fitted(smd_frames: tuple[pd.DataFrame, pd.DataFrame, np.ndarray]) -> AnomalyPipeline:
    train = smd_frames[0]
    return AnomalyPipeline(seed=1, detector_params=SMALL, shadow_detectors=["lof"]).fit(train)


def test_follows_the_scoring_model_protocol(fitted: AnomalyPipeline) -> None:
    model: ScoringModel = fitted
    assert model.metric_names_ == [f"dim_{j:02d}" for j in range(1, 39)]
    assert len(model.feature_names_) > 38
    assert 0.0 < model.threshold_ <= 1.0


def test_score_frame_shape_and_ranking(fitted: AnomalyPipeline, smd_frames) -> None:  # noqa: ANN001
    _, test, labels = smd_frames
    out = fitted.score_frame(test)
    assert list(out.columns) == ["score", "above_threshold", "alarm", "iforest", "ocsvm", "autoencoder", "pca", "lof"]
    assert out.index.equals(test.index)
    assert out["score"].between(0, 1).all()
    assert roc_auc_score(labels, out["score"]) > 0.75
    # Alarms are aggregated exceedances: never more alarm onsets than exceedance onsets.
    onsets = lambda s: int((np.diff(s.astype(int), prepend=0) == 1).sum())  # noqa: E731
    assert onsets(out["alarm"].to_numpy()) <= onsets(out["above_threshold"].to_numpy())
    assert out["alarm"].any(), "the slice holds three labelled incidents; some must alarm"


def test_stream_equals_batch_on_real_slice(fitted: AnomalyPipeline, smd_frames) -> None:  # noqa: ANN001
    _, test, _ = smd_frames
    part = test.iloc[200:290]  # includes the incident at rows 229-288 of the slice
    batch = fitted.score_frame(part)
    stream = fitted.new_stream()
    steps = [stream.update(ts.timestamp(), row.to_dict()) for ts, row in part.iterrows()]
    assert all(isinstance(s, StepResult) for s in steps)
    np.testing.assert_allclose([s.score for s in steps], batch["score"], rtol=1e-9, atol=1e-12)
    assert [s.alarm for s in steps] == batch["alarm"].tolist()
    assert [s.above_threshold for s in steps] == batch["above_threshold"].tolist()
    np.testing.assert_allclose([s.detector_scores["lof"] for s in steps], batch["lof"], rtol=1e-9)


def test_stream_fills_a_gap_like_batch_regridding(fitted: AnomalyPipeline, smd_frames) -> None:  # noqa: ANN001
    _, test, _ = smd_frames
    part = test.iloc[:60].drop(test.index[30:33])  # three scrapes lost
    batch = fitted.score_frame(part)
    stream = fitted.new_stream()
    scores = [stream.update(ts.timestamp(), row.to_dict()).score for ts, row in part.iterrows()]
    assert len(batch) == len(part)
    np.testing.assert_allclose(scores, batch["score"], rtol=1e-9, atol=1e-12)


def test_stream_state_survives_a_restart(fitted: AnomalyPipeline, smd_frames) -> None:  # noqa: ANN001
    _, test, _ = smd_frames
    rows = list(test.iloc[:50].iterrows())
    a = fitted.new_stream()
    for ts, row in rows[:35]:
        a.update(ts.timestamp(), row.to_dict())
    b = fitted.new_stream()
    b.load_state(json.loads(json.dumps(_plain(a.state_dict()))))
    for ts, row in rows[35:]:
        ra, rb = a.update(ts.timestamp(), row.to_dict()), b.update(ts.timestamp(), row.to_dict())
        assert ra.score == pytest.approx(rb.score, rel=1e-12) and ra.alarm == rb.alarm


def test_score_features_matches_unsmoothed_frame_scores(fitted: AnomalyPipeline, smd_frames) -> None:  # noqa: ANN001
    _, test, _ = smd_frames
    feats = fitted.features_frame(test.iloc[:200]).to_numpy()
    z, _, _ = fitted.surprisal_frame(test.iloc[:200])
    np.testing.assert_allclose(fitted.score_features(feats), to_unit(fitted.combine_surprisal(z)), rtol=1e-12)
    assert fitted.score_features(feats[0]).shape == (1,)
    with pytest.raises(DataError):
        fitted.score_features(feats[:, :-1])


def test_save_load_gives_identical_scores(fitted: AnomalyPipeline, smd_frames, tmp_path: Path) -> None:  # noqa: ANN001
    _, test, _ = smd_frames
    fitted.save(tmp_path / "m")
    again = AnomalyPipeline.load(tmp_path / "m")
    pd.testing.assert_frame_equal(fitted.score_frame(test), again.score_frame(test), check_exact=True)
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["data_hash"] == fitted.data_hash_
    with pytest.raises(ModelError):
        AnomalyPipeline.load(tmp_path / "nothing-here")


def test_model_card_has_what_drift_and_registry_need(fitted: AnomalyPipeline, smd_frames) -> None:  # noqa: ANN001
    train = smd_frames[0]
    card = fitted.model_card()
    assert card["feature_names"] == fitted.feature_names_
    assert card["training_window"]["rows"] == len(train)
    assert card["training_window"]["start"] == train.index[0].timestamp()
    assert card["training_window"]["end"] == train.index[-1].timestamp()
    assert len(card["data_hash"]) == 64
    assert {"numpy", "scikit-learn", "torch", "pandas"} <= set(card["library_versions"])
    stats = card["reference_stats"]["signals"]["dim_01"]
    assert stats["mean"] == pytest.approx(train["dim_01"].mean())
    assert stats["q50"] == pytest.approx(train["dim_01"].median())
    assert set(card["reference_stats"]["features"]) == set(fitted.feature_names_)
    assert sum(card["weights"].values()) == pytest.approx(1.0)
    assert card["weights"]["lof"] == 0.0 and card["shadow_detectors"] == ["lof"]
    json.dumps(card)  # plain JSON


def test_same_data_same_hash_other_data_other_hash(smd_frames) -> None:  # noqa: ANN001
    train = smd_frames[0].iloc[:400]
    kw = {"detectors": ["pca"], "cross_fit": False}
    a = AnomalyPipeline(**kw).fit(train)
    b = AnomalyPipeline(**kw).fit(train)
    c = AnomalyPipeline(**kw).fit(smd_frames[0].iloc[1:401])
    assert a.data_hash_ == b.data_hash_ != c.data_hash_


def test_contributions_name_raw_metrics(fitted: AnomalyPipeline, smd_frames) -> None:  # noqa: ANN001
    _, test, labels = smd_frames
    part = test.iloc[200:300]
    explained = fitted.explain_frame(part, rows=[int(np.argmax(labels[200:300]) + 10)])
    contrib = explained[0]
    assert 0 < len(contrib) <= fitted.top_k
    assert all(c.metric in fitted.metric_names_ for c in contrib)
    assert sum(c.share for c in contrib) <= 1.0 + 1e-12
    assert [c.share for c in contrib] == sorted((c.share for c in contrib), reverse=True)
    # Upstream interpretation labels name the dims behind each incident; slice rows 229-288 are
    # upstream 4629-4688 (dims 9,10,11,13,15,18), rows 1475-1550 upstream 5875-5951.
    first = {9, 10, 11, 13, 15, 18}
    third = {2, 10, 11, 12, 13, 18, 24, 25, 26, 32, 33, 34, 35, 36}
    c230, c250, c1520 = fitted.explain_frame(test, rows=[230, 250, 1520])
    assert _dim(c230[0]) in first and _dim(c250[0]) in first
    assert len({_dim(c) for c in c1520[:3]} & third) >= 2


def _dim(c: Contribution) -> int:
    return int(c.metric.split("_")[1])


def test_rejects_bad_input(smd_frames) -> None:  # noqa: ANN001
    train = smd_frames[0]
    with pytest.raises(DataError):
        AnomalyPipeline(detectors=["bogus"]).fit(train)
    with pytest.raises(DataError):
        AnomalyPipeline().fit(train.iloc[:50])
    with pytest.raises(ModelError):
        AnomalyPipeline().score_frame(train)
    fitted = AnomalyPipeline(detectors=["pca"], cross_fit=False).fit(train.iloc[:400])
    with pytest.raises(DataError):
        fitted.score_frame(train.drop(columns=["dim_05"]))


def _plain(obj):  # noqa: ANN001, ANN202
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, float) and np.isnan(obj):
        return None
    return obj


def test_shadow_detector_never_changes_the_ensemble(fitted: AnomalyPipeline, smd_frames) -> None:  # noqa: ANN001
    train, test, _ = smd_frames
    plain = AnomalyPipeline(seed=1, detector_params=SMALL).fit(train)
    a, b = fitted.score_frame(test.iloc[:300]), plain.score_frame(test.iloc[:300])
    pd.testing.assert_frame_equal(a.drop(columns=["lof"]), b)


def test_signal_floors_bound_the_scale_of_features_in_signal_units(smd_frames) -> None:  # noqa: ANN001
    train, _test, _labels = smd_frames
    column = str(train.columns[0])
    floor = 10 * float(train[column].std()) + 1.0  # far above what the data gives
    model = AnomalyPipeline(detectors=["pca"], step_seconds=60, signal_floors={column: floor}).fit(train.iloc[:600])
    groups = model.extractor_.feature_group_
    own = [i for i, n in enumerate(model.feature_names_) if n.split("|", 1)[0] == column]
    assert {groups[i] for i in own} >= {"level", "std_short", "mean_dev_long"}
    for i in own:
        assert model.scale_[i] >= floor, model.feature_names_[i]
    others = [i for i, n in enumerate(model.feature_names_) if n.split("|", 1)[0] != column]
    assert all(model.scale_[i] < floor for i in others)  # the floor applies to its own signal only


def test_archive_training_data_carries_the_catalogue_floors() -> None:
    from vigil.ingest.catalog import UNIT_RESOLUTION, signal_floors
    from vigil.training.data import archive_entity_data

    index = pd.date_range("2026-11-26", periods=3, freq="1s", tz="UTC")
    frame = pd.DataFrame({"memory_used_ratio": [0.1, 0.1, 0.1], "latency_p99": [0.2, 0.2, 0.2], "x": [1, 2, 3]}, index)
    data = archive_entity_data("h", frame, "archive")
    assert data.step_s == 1.0
    assert data.model_params["signal_floors"] == signal_floors(frame.columns)
    assert data.model_params["signal_floors"] == {
        "memory_used_ratio": UNIT_RESOLUTION["ratio"],
        "latency_p99": UNIT_RESOLUTION["seconds"],
    }


def test_memory_seconds_bounds_how_long_one_extreme_step_keeps_the_alarm(
    fitted: AnomalyPipeline,
    smd_frames,  # noqa: ANN001
) -> None:
    normal = smd_frames[0].iloc[-300:].copy()  # training rows: quiet for this model
    spike = 150
    normal.iloc[spike] = normal.max().to_numpy() * 3.0
    alarm = fitted.score_frame(normal)["alarm"].to_numpy()
    memory = int(fitted.memory_seconds() / fitted.step_)
    assert memory == 30 + fitted.smooth + fitted.alarm_hold
    assert not alarm[spike - 40 : spike].any()
    assert alarm[spike + 2 : spike + fitted.alarm_hold].all()
    assert not alarm[spike + memory :].any()


def test_the_streams_recent_median_is_numpys_nanmedian() -> None:
    """The streaming step's 3-step median (hand-written for speed) equals ``np.nanmedian`` bit for bit
    on real rows, with the gaps a stream sees (a signal missing in some or all of the steps)."""
    import warnings

    from tests.unit.registry.support import smd_slice
    from vigil.detectors.stream import _recent_median

    rows = smd_slice("machine-1-3", "test", 300).to_numpy(dtype=np.float64)
    rows[::7, ::3] = np.nan  # some steps miss some signals
    rows[10:13, 5] = np.nan  # one signal missing in a whole window
    for width in (2, 3):
        for end in range(width, len(rows)):
            window = rows[end - width : end]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                want = np.nanmedian(window, axis=0)
            assert np.array_equal(_recent_median(window), want, equal_nan=True), (width, end)
