"""`vigil collect` against real Prometheus and VictoriaMetrics: incremental, exact, resumable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import free_port
from tests.integration.ingest.conftest import Service, wait_for_samples
from vigil.ingest.archive import Archive, labels_json
from vigil.ingest.collector import MetricsCollector
from vigil.prometheus import PromClient

pytestmark = pytest.mark.integration

VIGIL = [sys.executable, "-m", "vigil.cli.main"]
SUBSET = '{__name__=~"node_load1|node_cpu_seconds_total|node_network_receive_bytes_total|up"}'


def _stats(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run([*VIGIL, "data", "stats", "--json"], env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    return {**env, "VIGIL_HOME": str(home), **extra}


@pytest.fixture(scope="module")
def prom(prometheus: Service) -> Service:
    wait_for_samples(prometheus.url, 'node_load1{job="node"}', 20)
    return prometheus


def test_incremental_collection_never_duplicates_or_drops_a_step(prom: Service, tmp_path: Path) -> None:
    client = PromClient(prom.url)
    archive = Archive(tmp_path / "archive")
    t0 = float(int(time.time()) - 12)

    def collector() -> MetricsCollector:
        # Small chunks force several windows per cycle; a fresh object per cycle is a restart.
        return MetricsCollector(client, archive, match=SUBSET, step_s=1, lag_s=0, chunk_s=3, backfill_s=8)

    first = collector().run_once(now_s=t0)
    collector().run_once(now_s=t0 + 4)
    collector().run_once(now_s=t0 + 4)  # nothing new: must write nothing
    last = collector().run_once(now_s=t0 + 11)
    assert first.start_ms == int(t0 - 8) * 1000 and last.end_ms == int(t0 + 11) * 1000

    archived = archive.read()
    keys = archived[["metric", "labels", "timestamp"]]
    assert not keys.duplicated().any()
    # One range query over the whole span is the ground truth for what the archive must hold.
    truth = client.query_range(SUBSET, first.start_ms / 1000, last.end_ms / 1000, 1)
    assert len(truth) > 3
    assert len(archived) == sum(len(s.values) for s in truth)
    for s in truth:
        got = archived[(archived["metric"] == s.name) & (archived["instance"] == s.labels.get("instance", ""))]
        got = got[got["labels"] == labels_json(s.labels)]
        np.testing.assert_array_equal(got["timestamp"].astype("int64").to_numpy(), np.round(s.timestamps * 1000))
        np.testing.assert_array_equal(got["value"].to_numpy(), s.values)
    steps = np.unique(archived["timestamp"].astype("int64").to_numpy())
    assert np.all(np.diff(steps) == 1000)


def test_victoria_metrics_is_collected_too(victoria_metrics: Service, tmp_path: Path) -> None:
    wait_for_samples(victoria_metrics.url, 'node_load1{job="node"}', 15)
    archive = Archive(tmp_path / "archive")
    client = PromClient(victoria_metrics.url)
    now = float(int(time.time()) - 3)
    collector = MetricsCollector(client, archive, step_s=1, lag_s=0, backfill_s=10)
    a = collector.run_once(now_s=now - 4)
    b = collector.run_once(now_s=now)
    assert a.samples > 1000 and b.samples > 1000
    frame = archive.read(matchers="node_load1")
    assert list(frame["timestamp"].astype("int64").diff().dropna().unique()) == [1000]
    [truth] = client.query_range("node_load1", now - 14, now, 1)
    np.testing.assert_array_equal(frame["timestamp"].astype("int64").to_numpy(), np.round(truth.timestamps * 1000))
    np.testing.assert_array_equal(frame["value"].to_numpy(), truth.values)
    health = collector.target_health()
    assert [(t.job, t.up) for t in health] == [("node", 1.0)]


def test_cli_collect_stats_and_resume(prom: Service, tmp_path: Path) -> None:
    env = _env(tmp_path, VIGIL_COLLECT_BACKFILL_S="30", VIGIL_COLLECT_LAG_S="1")
    cmd = [*VIGIL, "collect", "--prometheus-url", prom.url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert "samples of" in out.stdout
    stats1 = _stats(env)
    assert {"series", "samples", "start", "end", "bytes"} <= stats1.keys()
    assert stats1["series"] > 300 and stats1["samples"] > 5000 and stats1["bytes"] > 0
    time.sleep(2)
    subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=True)
    stats2 = _stats(env)
    assert stats2["samples"] > stats1["samples"] and stats2["end"] > stats1["end"]
    frame = Archive(tmp_path / "archive").read()
    assert not frame[["metric", "labels", "timestamp"]].duplicated().any()
    human = subprocess.run([*VIGIL, "data", "stats"], env=env, capture_output=True, text=True, check=True).stdout
    assert f"{stats2['samples']:,}" in human


def test_follow_serves_data_quality_metrics_and_stops_cleanly(prom: Service, tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path, VIGIL_COLLECT_BACKFILL_S="20", VIGIL_COLLECT_LAG_S="1")
    cmd = [*VIGIL, "collect", "--follow", "--metrics-port", str(port), "--interval", "1", "--prometheus-url", prom.url]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        body = ""
        while time.monotonic() < deadline:
            try:
                body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                if "vigil_data_target_up{instance=" in body and "vigil_data_archived_until_timestamp_seconds" in body:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        assert 'job="node"} 1.0' in body
        samples = [ln for ln in body.splitlines() if ln.startswith("vigil_data_samples_archived_total ")]
        assert samples and float(samples[0].split()[1]) > 1000
        assert 'vigil_data_family_completeness_ratio{family="node_load1"}' in body
        assert "process_cpu_seconds_total " in body  # its own CPU, as every exporter shows
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "collect: following" in out and "Traceback" not in err


@pytest.mark.parametrize("command", ["collect", "quality"])
def test_unreachable_prometheus_is_one_line(command: str, tmp_path: Path) -> None:
    cmd = [*VIGIL, command, "--prometheus-url", f"http://127.0.0.1:{free_port()}"]
    done = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 5
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("vigil: error: Prometheus API at")
    assert "Traceback" not in done.stderr


def test_steps_the_server_does_not_have_yet_stay_open(victoria_metrics: Service, tmp_path: Path) -> None:
    # Collecting up to 20 s ahead of the clock: VictoriaMetrics answers only a few seconds past its
    # newest sample. The steps it has nothing for must not be archived as empty (which would skip
    # them for good, as with its default 30 s -search.latencyOffset); the next cycle takes them.
    wait_for_samples(victoria_metrics.url, 'node_load1{job="node"}', 15)
    client = PromClient(victoria_metrics.url)
    archive = Archive(tmp_path / "archive")
    collector = MetricsCollector(client, archive, match="node_load1", step_s=1, lag_s=0, backfill_s=30)
    now = time.time()
    first = collector.run_once(now_s=now + 20)
    assert first.end_ms is not None and first.end_ms < (now + 15) * 1000
    time.sleep(max(0.0, first.end_ms / 1000 + 4 - time.time()))
    second = collector.run_once(now_s=time.time() - 1)
    assert second.start_ms == first.end_ms + 1000 and second.end_ms is not None
    frame = archive.read(matchers="node_load1")
    ts = frame["timestamp"].astype("int64").to_numpy()
    assert list(np.diff(ts)) == [1000] * (len(ts) - 1)
    # Values up to the moment of the first cycle, and all of the second, are the server's final ones.
    [truth] = client.query_range("node_load1", ts[0] / 1000, ts[-1] / 1000, 1)
    final = (ts <= (now - 2) * 1000) | (ts > first.end_ms)
    np.testing.assert_array_equal(frame["value"].to_numpy()[final], truth.values[final])
