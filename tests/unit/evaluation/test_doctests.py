"""The examples in the docstrings of features, detectors and evaluation run and stay true."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

MODULES = [
    "vigil.features.extractor",
    "vigil.features.windows",
    "vigil.detectors.alarms",
    "vigil.detectors.calibration",
    "vigil.detectors.combination",
    "vigil.detectors.pipeline",
    "vigil.detectors.iforest",
    "vigil.detectors.lof",
    "vigil.detectors.ocsvm",
    "vigil.detectors.pca",
    "vigil.detectors.autoencoder",
    "vigil.evaluation.metrics",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Examples that train a model read real SMD rows from the shared data folder.
    monkeypatch.setenv("VIGIL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("VIGIL_HOME", str(data_dir / "nonexistent-home"))
    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
