"""The one contract every detector follows, run against each of them on real SMD features."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from vigil.detectors import AutoencoderDetector, IForestDetector, LOFDetector, OCSVMDetector, PCADetector

DETECTORS = [
    IForestDetector(n_estimators=50, random_state=3),
    LOFDetector(n_neighbors=15, max_train=800, random_state=3),
    OCSVMDetector(nu=0.05, max_train=800, random_state=3),
    AutoencoderDetector(hidden=32, bottleneck=6, epochs=4, max_train=1500, random_state=3),
    PCADetector(n_components=0.9),
]
IDS = [type(d).__name__ for d in DETECTORS]


@pytest.fixture(params=DETECTORS, ids=IDS)
def detector(request: pytest.FixtureRequest):  # noqa: ANN201 - any detector
    return clone(request.param)


def test_init_only_stores_parameters(detector) -> None:  # noqa: ANN001
    params = detector.get_params()
    again = type(detector)(**params)
    assert again.get_params() == params
    assert not [k for k in vars(again) if k.endswith("_")]


def test_unfitted_detector_refuses_to_score(detector, smd_features) -> None:  # noqa: ANN001
    with pytest.raises(NotFittedError):
        detector.score_samples(smd_features[1][:5])


def test_fit_returns_self_and_scores_are_float64(detector, smd_features) -> None:  # noqa: ANN001
    train, test, _ = smd_features
    assert detector.fit(train) is detector
    s = detector.score_samples(test)
    assert s.dtype == np.float64 and s.shape == (len(test),) and np.isfinite(s).all()
    assert detector.n_features_in_ == train.shape[1]
    assert set(np.unique(detector.predict(test[:50]))) <= {-1, 1}


def test_higher_score_means_more_anomalous(detector, smd_features) -> None:  # noqa: ANN001
    train, test, labels = smd_features
    s = detector.fit(train).score_samples(test)
    # The labelled incidents of this real slice must rank clearly above normal rows; a detector
    # with its sign flipped would score an AUC well below 0.5.
    assert roc_auc_score(labels, s) > 0.7


def test_same_seed_same_scores_and_pickle_round_trip(detector, smd_features) -> None:  # noqa: ANN001
    train, test, _ = smd_features
    a = clone(detector).fit(train).score_samples(test)
    fitted = clone(detector).fit(train)
    b = fitted.score_samples(test)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).score_samples(test), b)


def test_wrong_width_is_rejected(detector, smd_features) -> None:  # noqa: ANN001
    train, test, _ = smd_features
    detector.fit(train)
    with pytest.raises(ValueError):
        detector.score_samples(test[:, :-1])


def test_subsampling_bounds_the_kernel_training_set(smd_features) -> None:  # noqa: ANN001
    train = smd_features[0]
    assert LOFDetector(max_train=300).fit(train).model_.n_samples_fit_ == 300
    assert OCSVMDetector(max_train=300).fit(train).model_.support_vectors_.shape[0] <= 300


@pytest.mark.parametrize(
    ("detector", "library_score"),
    [
        (IForestDetector(n_estimators=60, random_state=1), lambda d, X: -d.model_.score_samples(X)),
        (IForestDetector(max_features=0.5, random_state=1), lambda d, X: -d.model_.score_samples(X)),
        (LOFDetector(max_train=700, random_state=1), lambda d, X: -d.model_.score_samples(X)),
        (OCSVMDetector(max_train=700, random_state=1), lambda d, X: -d.model_.decision_function(X)),
        (PCADetector(), lambda d, X: _pca_library_error(d, X)),
    ],
    ids=["iforest", "iforest-subfeatures", "lof", "ocsvm", "pca"],
)
def test_vectorised_scoring_equals_the_library(detector, library_score, smd_features) -> None:  # noqa: ANN001
    train, test, _ = smd_features
    detector.fit(train)
    np.testing.assert_allclose(detector.score_samples(test), library_score(detector, test), rtol=1e-9, atol=1e-12)


def _pca_library_error(det: PCADetector, X: np.ndarray) -> np.ndarray:
    Z = (X - det.mean_) / det.scale_
    return ((Z - det.model_.inverse_transform(det.model_.transform(Z))) ** 2).sum(axis=1)
