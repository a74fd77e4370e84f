from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.unit.detection.realmodel import save_model, smd_dir
from tests.unit.server.livehttp import serve
from vigil.config import Settings, load_settings
from vigil.detection.service import DetectionService
from vigil.server import create_app


@pytest.fixture(autouse=True)
def _need_smd() -> None:
    if not (smd_dir() / "train").is_dir():
        unavailable(f"real SMD data not found at {smd_dir()}")


@pytest.fixture
def settings(vigil_home: Path) -> Settings:
    return load_settings(home=vigil_home, api_token="test-token", serving={"model_poll_s": 0.2})


@pytest.fixture
def model_dir(settings: Settings) -> Path:
    return save_model(settings.models_dir, "smd-a")


@pytest.fixture
def service(settings: Settings, model_dir: Path) -> Iterator[DetectionService]:
    svc = DetectionService(settings, send_alerts=False)
    yield svc
    svc.close()


@pytest.fixture
def base_url(settings: Settings, service: DetectionService) -> Iterator[str]:
    with serve(create_app(settings, service=service)) as url:
        yield url
