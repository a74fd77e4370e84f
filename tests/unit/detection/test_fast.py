"""The compiled serving path computes the reference implementation's scores (real SMD rows)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.detection.realmodel import frame, seconds, trained
from vigil.detection.fast import CompiledDetector, compile_detector, compile_model


@pytest.fixture(scope="module")
def model():  # noqa: ANN201
    return trained()


@pytest.fixture(scope="module")
def test_features(model) -> np.ndarray:  # noqa: ANN001
    # Test-half rows, which include labelled anomalies: the fast path must agree off-distribution too.
    return model.features_frame(frame("test", 0, 800)).to_numpy()


def test_every_detector_compiles_and_matches(model, test_features) -> None:  # noqa: ANN001
    Z = model.standardize(test_features)
    for name, det in model.detectors_.items():
        compiled = compile_detector(det)
        assert isinstance(compiled, CompiledDetector), name
        X = Z[:, model.detector_columns_[name]]
        np.testing.assert_allclose(compiled.score_samples(X), det.score_samples(X), rtol=1e-9, atol=1e-12)
        # One row at a time is the serving shape.
        np.testing.assert_allclose(compiled.score_samples(X[7]), det.score_samples(X[7:8]), rtol=1e-9)


def test_compiled_model_scores_equal_reference(model, test_features) -> None:  # noqa: ANN001
    fast, info = compile_model(model, check_rows=model.standardize(test_features[:64]))
    assert info["fast"] and set(info["detectors"]) == set(model.detectors_)
    assert all(v.endswith("Detector") for v in info["detectors"].values())
    np.testing.assert_allclose(fast.score_features(test_features), model.score_features(test_features), atol=1e-9)
    # The reference model object is left as it was.
    assert not any(isinstance(d, CompiledDetector) for d in model.detectors_.values())


def test_compiled_stream_equals_reference_stream(model) -> None:  # noqa: ANN001
    fast, _ = compile_model(model)
    test = frame("test", 0, 120)
    ref_stream, fast_stream = model.new_stream(), fast.new_stream()
    for ts, row in zip(seconds(test.index), test.to_dict("records"), strict=True):
        a, b = ref_stream.update(ts, row), fast_stream.update(ts, row)
        assert a is not None and b is not None
        assert abs(a.score - b.score) < 1e-9
        assert (a.alarm, a.above_threshold) == (b.alarm, b.above_threshold)


def test_disagreeing_detector_falls_back_to_reference(model, test_features) -> None:  # noqa: ANN001
    rows = model.standardize(test_features[:32])
    _, info = compile_model(model, check_rows=rows, rtol=-1.0)  # no difference can pass a negative tolerance
    assert not info["fast"]
    assert all(v.startswith("reference") for v in info["detectors"].values())


def test_one_row_calibration_is_the_vectorised_calibration(model, test_features) -> None:  # noqa: ANN001
    Z = model.standardize(test_features)
    for name, cal in model.calibrators_.items():
        raw = model.detectors_[name].score_samples(Z[:, model.detector_columns_[name]])
        # Real raw scores plus the edges: below every training score, far in the tail, NaN.
        values = np.concatenate([raw, [cal.sorted_[0] - 1.0, cal.q_, cal.q_ + 100 * cal.beta_, np.nan]])
        # numpy's log1p is vectorised on CPUs with AVX-512 and then differs from libm's in the last bit.
        one = np.array([cal.surprisal_one(float(v)) for v in values])
        np.testing.assert_array_max_ulp(one, cal.surprisal(values), maxulp=2)
    # The streaming step (one row) and a batch agree (a BLAS product over one row or many may round
    # the raw scores' last bits differently; the calibration adds nothing to that).
    one_by_one = np.vstack([model.score_surprisal(Z[i : i + 1]) for i in range(len(Z))])
    np.testing.assert_allclose(one_by_one, model.score_surprisal(Z), rtol=1e-9, atol=1e-12)


def test_serving_copy_really_calls_the_compiled_code(model) -> None:  # noqa: ANN001
    fast, _ = compile_model(model)
    calls: list[str] = []
    for name, det in fast.detectors_.items():
        inner = det._fn

        def spy(X, _inner=inner, _name=name):  # noqa: ANN001, ANN202
            calls.append(_name)
            return _inner(X)

        det._fn = spy
    test = frame("test", 0, 3)
    stream = fast.new_stream()
    for ts, row in zip(seconds(test.index), test.to_dict("records"), strict=True):
        stream.update(ts, row)
    fast.score_features(fast.features_frame(test).to_numpy())
    assert calls.count("iforest") == 4 and set(calls) == set(model.detectors_)
