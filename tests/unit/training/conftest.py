from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.registry.support import make_template, settings_from_template


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("mlflow-template"))


@pytest.fixture
def registry(tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from vigil.registry import ModelRegistry

    monkeypatch.delenv("VIGIL_CONFIG", raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("VIGIL_HOME", str(home))
    yield ModelRegistry(settings_from_template(home, mlflow_template))
