"""Feature extraction on a real SMD slice: incremental equals batch, gaps stay visible."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.errors import DataError
from vigil.features.extractor import ALL_KINDS, DEFAULT_KINDS, FeatureExtractor

STEP = 60.0


def _fit(train: np.ndarray, kinds: tuple[str, ...] = ALL_KINDS) -> FeatureExtractor:
    names = [f"dim_{j:02d}" for j in range(train.shape[1])]
    return FeatureExtractor(kinds=kinds).fit(train, np.arange(len(train)) * STEP, names)


def test_every_kind_is_named_once(smd_train: np.ndarray) -> None:
    fx = _fit(smd_train)
    assert len(fx.feature_names_) == len(set(fx.feature_names_))
    assert set(fx.feature_group_) == set(ALL_KINDS)
    assert fx.transform(smd_train[:50], np.arange(50) * STEP).shape == (50, len(fx.feature_names_))


def test_incremental_equals_batch_on_real_slice_with_gaps(smd_train: np.ndarray, smd_test: np.ndarray) -> None:
    fx = _fit(smd_train)
    x = smd_test[:400].copy()
    # Real rows with a few values knocked out: a lone missing sample and a 40-step outage of one
    # metric, so the NaN paths (partial windows, staleness, EWMA holds) are exercised too.
    x[37, 3] = np.nan
    x[100:140, 5] = np.nan
    x[200, :] = np.nan
    ts = (len(smd_train) + np.arange(len(x))) * STEP
    batch = fx.transform(x, ts)
    stream = fx.new_stream()
    inc = np.stack([stream.update(t, row) for t, row in zip(ts, x, strict=True)])
    np.testing.assert_allclose(inc, batch, rtol=1e-9, atol=1e-9, equal_nan=True)


def test_stream_resumes_from_state(smd_train: np.ndarray, smd_test: np.ndarray) -> None:
    fx = _fit(smd_train)
    ts = np.arange(120) * STEP
    a = fx.new_stream()
    for t, row in zip(ts[:60], smd_test[:60], strict=True):
        a.update(t, row)
    b = fx.new_stream()
    b.load_state(a.state_dict())
    for t, row in zip(ts[60:], smd_test[60:120], strict=True):
        np.testing.assert_allclose(a.update(t, row), b.update(t, row), equal_nan=True)


def test_missing_values_stay_missing_and_are_counted(smd_train: np.ndarray) -> None:
    fx = _fit(smd_train, kinds=("level", "mean_dev_short", "stale", "missing_frac"))
    x = smd_train[:20].copy()
    x[10:13, 0] = np.nan
    f = fx.transform(x, np.arange(20) * STEP)
    names = fx.feature_names_
    level = f[:, names.index("dim_00|level")]
    assert np.isnan(level[10:13]).all()  # never silently 0
    assert f[12, names.index("dim_00|stale")] == 3.0
    assert f[13, names.index("dim_00|stale")] == 0.0
    assert f[11, names.index("*|missing_frac")] == pytest.approx(1 / x.shape[1])


def test_features_are_causal(smd_train: np.ndarray) -> None:
    fx = _fit(smd_train)
    ts = np.arange(300) * STEP
    full = fx.transform(smd_train[:300], ts)
    prefix = fx.transform(smd_train[:200], ts[:200])
    np.testing.assert_allclose(full[:200], prefix, equal_nan=True)


def test_correlation_pairs_come_from_training(smd_train: np.ndarray) -> None:
    fx = _fit(smd_train)
    assert 0 < len(fx.pairs_) <= fx.max_pairs
    assert (np.abs(fx.pair_corr_) >= fx.min_pair_corr).all()


def test_unknown_kind_and_bad_shape_are_data_errors(smd_train: np.ndarray) -> None:
    with pytest.raises(DataError):
        FeatureExtractor(kinds=("level", "bogus")).fit(smd_train, np.arange(len(smd_train)) * STEP, ["a"] * 38)
    fx = _fit(smd_train, kinds=("level",))
    with pytest.raises(DataError):
        fx.transform(smd_train[:, :5], np.arange(len(smd_train)) * STEP)


def test_memory_steps_is_how_long_one_row_shapes_the_features(smd_train: np.ndarray) -> None:
    fx = _fit(smd_train, (*DEFAULT_KINDS, "lag"))
    ts = np.arange(200) * STEP
    before = fx.transform(smd_train[:200], ts)
    changed = smd_train[:200].copy()
    changed[100] *= 5.0
    after = fx.transform(changed, ts)
    differs = ~np.isclose(before, after, equal_nan=True).all(axis=1)
    memory = fx.memory_steps()
    assert memory == 30
    assert differs[100] and differs[100 + memory - 1]  # the bound is tight...
    assert not differs[100 + memory :].any()  # ...and holds
    # An EWMA residual fades instead of dropping out: until the row weighs under 1 % (0.97^152).
    slow = _fit(smd_train, ("ewma_res_slow",))
    assert slow.memory_steps() == 152
