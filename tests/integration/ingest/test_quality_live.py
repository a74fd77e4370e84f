"""Killing node_exporter must show up in the quality report and in the vigil_data_* metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.integration.ingest.conftest import start_node_exporter, start_prometheus, wait_for_samples
from vigil.ingest.archive import Archive
from vigil.ingest.collector import MetricsCollector
from vigil.ingest.quality import DataQualityCollector
from vigil.ingest.quality_report import quality_report
from vigil.prometheus import PromClient

pytestmark = pytest.mark.integration


def test_dead_node_exporter_shows_in_report_and_metrics(tmp_path: Path) -> None:
    node = start_node_exporter(tmp_path)
    prom = start_prometheus(tmp_path, [node.url.removeprefix("http://")])
    try:
        wait_for_samples(prom.url, 'node_load1{job="node"}', 12)
        client = PromClient(prom.url)
        instance = node.url.removeprefix("http://")
        collector = MetricsCollector(client, Archive(tmp_path / "archive"), step_s=1, lag_s=1, backfill_s=10)
        registry = CollectorRegistry()
        registry.register(DataQualityCollector(collector.tracker))
        collector.run_once()

        healthy = quality_report(client, window_s=10, step_s=1, lag_s=1)
        assert {(t.job, t.up) for t in healthy.targets} == {("node", 1.0), ("prometheus", 1.0)}
        assert healthy.families["node_load1"].completeness == 1.0
        assert registry.get_sample_value("vigil_data_target_up", {"job": "node", "instance": instance}) == 1.0
        assert registry.get_sample_value("vigil_data_family_completeness_ratio", {"family": "node_load1"}) == 1.0

        node.proc.kill()
        node.proc.wait(timeout=10)
        time.sleep(6)  # a few failed 1 s scrapes, plus the 1 s lag

        collector.run_once()
        assert registry.get_sample_value("vigil_data_target_up", {"job": "node", "instance": instance}) == 0.0
        assert registry.get_sample_value("vigil_data_family_completeness_ratio", {"family": "node_load1"}) < 0.9
        assert registry.get_sample_value("vigil_data_completeness_ratio") < 0.95
        # Prometheus' own series keep coming: the drop is the dead target's, not everyone's.
        own = {"family": "prometheus_build_info"}
        assert registry.get_sample_value("vigil_data_family_completeness_ratio", own) == 1.0

        down = quality_report(client, window_s=10, step_s=1, lag_s=1)
        assert [t.up for t in down.targets if t.job == "node"] == [0.0]
        assert down.families["node_load1"].missing_steps >= 3
        assert down.families["node_load1"].completeness < 0.8
        assert down.families["prometheus_build_info"].completeness == 1.0
        # A window that begins after the target died still names what it lost.
        gone = quality_report(client, window_s=3, step_s=1, lag_s=1)
        assert gone.families["node_load1"].completeness == 0.0
        assert gone.families["node_load1"].missing_steps == 3

        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env.update(VIGIL_HOME=str(tmp_path / "home"), VIGIL_COLLECT_LAG_S="1")
        cmd = [sys.executable, "-m", "vigil.cli.main", "quality", "--window", "10", "--prometheus-url", prom.url]
        done = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, check=True, timeout=60)
        report = json.loads(done.stdout)
        assert report["targets_down"] == 1
        assert {(t["job"], t["up"]) for t in report["targets"]} == {("node", 0.0), ("prometheus", 1.0)}
        assert report["families"]["node_load1"]["completeness"] < 0.8
        assert {"completeness", "missing_steps", "series", "nan_samples", "counter_resets"} <= set(
            report["families"]["node_load1"]
        )
        text = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=60)
        assert f"target node/{instance}: DOWN" in text.stdout
    finally:
        node.stop()
        prom.stop()
