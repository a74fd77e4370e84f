"""Window statistics on tiny hand-computed vectors (pure arithmetic)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from vigil.features import windows as W

nan = np.nan


def test_rolling_mean_uses_partial_windows_at_the_start() -> None:
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    assert W.rolling(x, 3, W.w_mean)[:, 0].tolist() == [1.0, 1.5, 2.0, 3.0]


def test_rolling_std_is_population_std() -> None:
    x = np.array([[1.0], [3.0], [5.0]])
    np.testing.assert_allclose(W.rolling(x, 2, W.w_std)[:, 0], [0.0, 1.0, 1.0])


def test_nan_is_skipped_not_zeroed() -> None:
    x = np.array([[2.0], [nan], [4.0]])
    out = W.rolling(x, 3, W.w_mean)[:, 0]
    # A zero-filled gap would give (2 + 0 + 4) / 3 = 2 at the last step.
    assert out.tolist() == [2.0, 2.0, 3.0]


def test_all_missing_window_is_nan() -> None:
    x = np.array([[1.0], [nan], [nan]])
    out = W.rolling(x, 2, W.w_max)[:, 0]
    assert out[1] == 1.0 and np.isnan(out[2])


def test_median_and_mad() -> None:
    a = np.array([[1.0, 2.0, 100.0]])
    med = W.w_median(a)
    assert med.tolist() == [2.0]
    assert W.w_mad(a, med).tolist() == [1.0]


@pytest.mark.parametrize(("values", "slope"), [([1.0, 3.0, 5.0], 2.0), ([4.0, nan, 0.0], -2.0), ([7.0, 7.0], 0.0)])
def test_slope(values: list[float], slope: float) -> None:
    assert W.w_slope(np.array([values]))[0] == pytest.approx(slope)


def test_slope_needs_two_points() -> None:
    assert np.isnan(W.w_slope(np.array([[nan, 3.0]]))[0])


def test_corr_of_paired_windows() -> None:
    a = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    b = np.array([[2.0, 4.0, 6.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    out = W.w_corr(a, b)
    assert out[0] == pytest.approx(1.0) and out[1] == pytest.approx(-1.0)
    assert np.isnan(out[2])  # flat window: correlation undefined, not 0


def test_quantile_matches_numpy_on_a_window() -> None:
    a = np.array([[1.0, 2.0, 3.0, 4.0, 10.0]])
    assert W.w_quantile(a, 0.9)[0] == pytest.approx(np.quantile(a[0], 0.9))


@pytest.mark.parametrize("fn", [np.nanmean, np.nanmedian, np.nanstd, np.nanmin, np.nanmax])
def test_nan_reduce_gives_nan_for_empty_slices_without_a_warning(fn) -> None:
    a = np.array([[1.0, np.nan, 4.0], [3.0, np.nan, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns on the all-NaN column; nan_reduce never asks it
        got = W.nan_reduce(fn, a, axis=0)
    expected = np.array([fn(a[:, 0]), np.nan, fn(a[:, 2])])
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(W.nan_reduce(fn, np.full(3, np.nan)))
    assert np.isnan(W.nan_reduce(fn, np.empty((0, 2)), axis=0)).all()


def test_nan_reduce_passes_quantiles_through() -> None:
    a = np.array([[1.0, np.nan], [3.0, np.nan], [5.0, np.nan]])
    got = W.nan_reduce(np.nanquantile, a, axis=0, q=[0.0, 0.5])
    np.testing.assert_array_equal(got, [[1.0, np.nan], [3.0, np.nan]])
