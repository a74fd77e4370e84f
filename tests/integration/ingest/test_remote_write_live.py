"""The streaming path on what Prometheus really sends: remote_write from a real Prometheus."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import free_port
from tests.integration.ingest.conftest import start_node_exporter, start_prometheus, wait_for_samples
from vigil.features.counters import is_stale_marker
from vigil.ingest.quality import QualityTracker
from vigil.ingest.remote_write import DecodedSeries, decode_write_request
from vigil.ingest.signals import load_entity_frame
from vigil.ingest.stream import SignalAssembler
from vigil.prometheus import PromClient

pytestmark = pytest.mark.integration


class _Receiver:
    def __init__(self) -> None:
        self.series: list[DecodedSeries] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                batch = decode_write_request(body)
                with receiver.lock:
                    receiver.series.extend(batch.series)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def samples(self) -> list[tuple[dict[str, str], int, float]]:
        with self.lock:
            out = [(s.labels, t, v) for s in self.series for t, v in zip(s.timestamps_ms, s.values, strict=True)]
        return sorted(out, key=lambda x: x[1])


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_remote_write_stream_equals_batch_and_carries_stale_markers(tmp_path: Path, receiver: _Receiver) -> None:
    node = start_node_exporter(tmp_path)
    extra = f"""remote_write:
  - url: http://127.0.0.1:{receiver.port}/api/v1/write
    queue_config: {{batch_send_deadline: 1s, max_samples_per_send: 2000, min_backoff: 100ms}}
"""
    prom = start_prometheus(tmp_path, [node.url.removeprefix("http://")], extra_config=extra)
    instance = node.url.removeprefix("http://")
    try:
        wait_for_samples(prom.url, 'node_load1{job="node"}', 20)
        time.sleep(3)  # let the last batches arrive
        samples = receiver.samples()
        newest = max(t for labels, t, _ in samples if labels.get("instance") == instance) // 1000
        asm = SignalAssembler(step_s=1.0)
        steps = [s for s in asm.add_many(samples) + asm.flush() if s.entity == instance]
        stream = pd.DataFrame(
            [s.values for s in steps], index=pd.to_datetime([s.timestamp for s in steps], unit="s", utc=True)
        )
        start, end = stream.index[0].timestamp() + 2, float(newest - 2)
        batch = load_entity_frame(PromClient(prom.url), instance, start, end, 1.0)
        # The batch's first step has no earlier sample to take a counter rate from; the stream has.
        batch = batch.iloc[1:]
        stream = stream.reindex(batch.index)[batch.columns]
        assert len(batch) >= 10
        # Mostly present, so the comparison below is not of two empty frames. A scrape that a loaded
        # machine misses leaves a rate without its two samples for a step: NaN in both, and equal.
        present = batch[["load1", "cpu_busy", "memory_used_ratio"]].notna().mean()
        assert (present >= 0.8).all(), present
        pd.testing.assert_frame_equal(stream, batch, check_names=False, check_freq=False)

        # The target dies: Prometheus ends its series with stale markers, which the stream sees.
        node.proc.kill()
        node.proc.wait(timeout=10)
        time.sleep(5)
        after = receiver.samples()
        node_values = [v for labels, _, v in after if labels.get("instance") == instance and labels["__name__"] != "up"]
        tracker = QualityTracker()
        tracker.observe_raw(node_values)
        report = tracker.report()
        assert report.stale_markers > 100  # one per node series
        assert sum(1 for v in node_values if is_stale_marker(v)) == report.stale_markers
        ups = [v for labels, _, v in after if labels["__name__"] == "up" and labels.get("instance") == instance]
        assert ups[-1] == 0.0
        asm2 = SignalAssembler(step_s=1.0)
        tail = [s for s in asm2.add_many(after) + asm2.flush() if s.entity == instance]
        assert np.isnan(tail[-1].values["load1"]) and np.isnan(tail[-1].values["memory_used_ratio"])
    finally:
        node.stop()
        prom.stop()
