"""Hand anomalies to the alerting layer without ever blocking the scoring path.

The scoring thread only puts events on a bounded queue; one dispatcher thread drains it and hands
each batch to :class:`vigil.alerting.sender.AlertSender` (stable labels, re-posts, resolves,
retry with backoff), which posts to Alertmanager at once. When the queue is full the oldest event
is dropped and counted: a late page is worth less than keeping ingest alive.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vigil.alerting.client import AlertmanagerClient
from vigil.alerting.sender import AlertSender
from vigil.detection.stats import ServiceStats
from vigil.events import Anomaly

log = logging.getLogger(__name__)

Deliver = Callable[[Sequence[Anomaly]], int]  # returns how many alerts reached Alertmanager now


class AlertDispatcher:
    def __init__(
        self,
        deliver: Deliver,
        *,
        stats: ServiceStats | None = None,
        max_queue: int = 10_000,
        max_batch: int = 200,
        on_close: Callable[[], Any] | None = None,
    ) -> None:
        self._deliver = deliver
        self.stats = stats or ServiceStats()
        self.max_batch = max_batch
        self._on_close = on_close
        self._queue: queue.Queue[tuple[Anomaly, float]] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vigil-alerts", daemon=True)
        self._thread.start()

    def submit(self, event: Anomaly, scored_at: float) -> None:
        try:
            self._queue.put_nowait((event, scored_at))
        except queue.Full:
            try:
                self._queue.get_nowait()
                self.stats.counters.inc("alerts", "dropped")
            except queue.Empty:
                pass
            self._queue.put_nowait((event, scored_at))

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        if self._on_close is not None:
            try:
                self._on_close()
            except Exception:
                log.exception("closing the alert sender failed")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                delivered = self._deliver([event for event, _ in batch])
            except Exception:
                self.stats.counters.inc("alerts", "failed", len(batch))
                log.exception("handing %d anomalies to the alert sender failed", len(batch))
                continue
            if delivered:
                done = time.perf_counter()
                for _, scored_at in batch:
                    self.stats.score_to_alert.observe(done - scored_at)
                self.stats.counters.inc("alerts", "sent", delivered)
            else:
                # Alertmanager is down or backing off: the sender keeps them and its thread retries.
                self.stats.counters.inc("alerts", "deferred", len(batch))


def alertmanager_dispatcher(
    url: str,
    *,
    stats: ServiceStats | None = None,
    resend_s: float = 60.0,
    prometheus_url: str = "",
    client: AlertmanagerClient | None = None,
    state_path: Path | None = None,
) -> AlertDispatcher:
    sender = AlertSender(
        client or AlertmanagerClient(url, timeout_s=5.0),
        resend_interval_s=resend_s,
        prometheus_url=prometheus_url,
        state_path=state_path,
    )
    sender.start(interval_s=1.0)  # re-posts and retries; first deliveries happen on the dispatcher thread
    return AlertDispatcher(
        lambda events: sender.process(events, flush=True),
        stats=stats,
        on_close=lambda: sender.stop(final_flush=True),
    )
