"""Fallback mode: no remote_write; Vigil polls a real Prometheus with PromQL each step."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.integration.server.realprocs import ReplayExporter, binary, prometheus, wait_until
from tests.unit.detection.realmodel import columns, save_model, smd_dir, smd_rows
from vigil.config import load_settings
from vigil.detection.service import DetectionService

pytestmark = pytest.mark.integration


def test_promql_polling_feeds_the_same_engine(tmp_path: Path) -> None:
    if not (smd_dir() / "test").is_dir() or not binary("prometheus"):
        unavailable("needs real SMD data and prometheus")
    rows = smd_rows("test")[:200].tolist()
    with (
        ReplayExporter(columns(), rows) as exporter,
        prometheus(tmp_path, {"smd": exporter.target}, None, "500ms") as prom,
    ):
        settings = load_settings(
            home=tmp_path / "home", prometheus_url=prom, api_token="t", serving={"ingest_mode": "poll"}
        )
        save_model(settings.models_dir, "smd-0.5s", step_s=0.5)
        service = DetectionService(settings, send_alerts=False)
        service.start()
        try:
            wait_until(lambda: service.stats.counters.get("steps", "scored") >= 6, 40, "6 polled steps scored")
            views = service.engine.views()
            assert [v.entity for v in views] == [exporter.target]
            assert 0.0 <= views[0].score <= 1.0
            assert service.readiness().ready
            assert service.stats.counters.get("samples", "out_of_order") == 0
        finally:
            service.close()
