"""Signals from real node_exporter data: archive batch == Prometheus batch == streaming."""

from __future__ import annotations

import json
import time
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest

from tests.integration.ingest.conftest import Service, wait_for_samples
from vigil.config import load_settings
from vigil.ingest.archive import Archive
from vigil.ingest.catalog import HOST_SIGNALS, signal_names
from vigil.ingest.collector import MetricsCollector
from vigil.ingest.expr import Columns, histogram_quantile
from vigil.ingest.signals import discover_entities, list_entities, load_entity_frame
from vigil.ingest.stream import SignalAssembler, SignalStep
from vigil.prometheus import PromClient
from vigil.promql import selector

pytestmark = pytest.mark.integration

GAUGE_SIGNALS = ["memory_used_ratio", "load1", "procs_running", "fs_free_ratio", "tcp_established", "swap_used_bytes"]


class Collected(NamedTuple):
    client: PromClient
    archive: Archive
    instance: str
    end: float


@pytest.fixture(scope="module")
def collected(prometheus: Service, node_exporter: Service, tmp_path_factory: pytest.TempPathFactory) -> Collected:
    wait_for_samples(prometheus.url, 'node_load1{job="node"}', 25)
    client = PromClient(prometheus.url)
    archive = Archive(tmp_path_factory.mktemp("signals") / "archive")
    end = float(int(time.time()) - 2)
    MetricsCollector(client, archive, step_s=1, lag_s=0, backfill_s=22).run_once(now_s=end)
    return Collected(client, archive, node_exporter.url.removeprefix("http://"), end)


def _frame(steps: list[SignalStep]) -> pd.DataFrame:
    index = pd.to_datetime([s.timestamp for s in steps], unit="s", utc=True).as_unit("ns")
    return pd.DataFrame([s.values for s in steps], index=index)


def test_entities_are_found(collected: Collected) -> None:
    client, archive, instance, _ = collected
    hosts = [e for e in discover_entities(archive) if e.kind == "host"]
    assert [(e.name, e.label) for e in hosts] == [(instance, "instance")]
    assert instance in list_entities(client)


def test_archive_and_prometheus_batches_agree(collected: Collected) -> None:
    client, archive, instance, end = collected
    a = load_entity_frame(archive, instance, end - 20, end, 1.0)
    p = load_entity_frame(client, instance, end - 20, end, 1.0)
    assert list(a.columns) == signal_names("host") and len(a) == 21
    assert isinstance(a.index, pd.DatetimeIndex) and str(a.index.tz) == "UTC"
    pd.testing.assert_frame_equal(a, p)
    # Signals node_exporter provides on any Linux host are never missing after the first step.
    must = ["cpu_busy", "memory_used_ratio", "load1", "context_switches_per_s", "fs_free_ratio"]
    assert a[must].iloc[1:].notna().all().all()
    assert a["cpu_busy"].iloc[1:].between(0, 1).all() and a["memory_used_ratio"].between(0, 1).all()


def test_streaming_from_archived_samples_equals_batch(collected: Collected) -> None:
    _, archive, instance, end = collected
    batch = load_entity_frame(archive, instance, end - 20, end, 1.0)
    rows = archive.read(end - 20, end, [("instance", "=", instance)]).sort_values("timestamp", kind="stable")
    # Archived samples sit exactly on the grid, so a sample is current for one step only.
    asm = SignalAssembler(1.0, lookback_s=1.0)
    steps = []
    for ts, metric, text, value in zip(
        rows["timestamp"].astype("int64"), rows["metric"], rows["labels"], rows["value"], strict=True
    ):
        steps.extend(asm.add({**json.loads(text), "__name__": metric}, int(ts), float(value)))
    steps.extend(asm.flush())
    stream = _frame(steps)[batch.columns]
    pd.testing.assert_frame_equal(stream, batch, check_names=False, check_freq=False)


def test_streaming_from_raw_scrapes_equals_batch(collected: Collected) -> None:
    # The remote_write path sees raw samples with scrape timestamps; placed on the grid the way a
    # range query does, they give the batch values exactly.
    client, archive, instance, end = collected
    batch = load_entity_frame(archive, instance, end - 15, end, 1.0)
    metrics = sorted({m for s in HOST_SIGNALS for i in s.inputs for m in i.metrics})
    raw = client.api(
        "query",
        {
            "query": selector(None, [("__name__", "=~", "|".join(metrics)), ("instance", "=", instance)]) + "[20s]",
            "time": f"{end:.3f}",
        },
    )["result"]
    samples = [(r["metric"], round(float(t) * 1000), float(v)) for r in raw for t, v in r["values"]]
    samples.sort(key=lambda s: s[1])
    asm = SignalAssembler(1.0)
    steps = asm.add_many(samples) + asm.flush()
    stream = _frame(steps)[batch.columns].reindex(batch.index)
    # The first steps lack a previous counter sample in the 20 s raw window; compare after them.
    tail = batch.index[3:]
    pd.testing.assert_frame_equal(stream.loc[tail], batch.loc[tail], check_names=False, check_freq=False)


def test_promql_expressions_agree_with_computed_gauges(collected: Collected) -> None:
    client, archive, instance, end = collected
    frame = load_entity_frame(archive, instance, end - 5, end, 1.0)
    [entity] = [e for e in discover_entities(archive) if e.name == instance]
    by_name = {s.name: s for s in HOST_SIGNALS}
    for name in GAUGE_SIGNALS:
        result = client.query(by_name[name].promql(entity), time=end)
        assert len(result) == 1, name
        assert result[0].value == pytest.approx(frame[name].iloc[-1], rel=1e-12), name
    for name in ["cpu_busy", "context_switches_per_s", "disk_write_bytes_per_s"]:
        [rate] = client.query(by_name[name].promql(entity, "10s"), time=end)
        assert np.isfinite(rate.value) and rate.value >= 0, name


def testhistogram_quantile_matches_prometheus(collected: Collected) -> None:
    client, _, _, end = collected
    buckets = client.query("prometheus_http_request_duration_seconds_bucket", time=end)
    assert len(buckets) > 10
    cols = Columns([s.labels for s in buckets], np.array([[s.value for s in buckets]]))
    for q in (0.5, 0.9, 0.99):
        [oracle] = client.query(
            f"histogram_quantile({q}, sum by (le) (prometheus_http_request_duration_seconds_bucket))", time=end
        )
        assert histogram_quantile(q, cols)[0] == pytest.approx(oracle.value, rel=1e-9)


def test_default_source_is_the_local_archive(collected: Collected) -> None:
    # The training pipeline calls these with settings only (vigil.training.data.from_archive).
    _, archive, instance, end = collected
    settings = load_settings(home=archive.root.parent, scrape_interval_s=1.0)
    assert instance in list_entities(settings=settings)
    frame = load_entity_frame(instance, since_s=10, settings=settings)
    assert len(frame) == 11 and frame.index[-1] == pd.Timestamp(end, unit="s", tz="UTC")
    pd.testing.assert_frame_equal(frame, load_entity_frame(archive, instance, end - 10, end, 1.0))
