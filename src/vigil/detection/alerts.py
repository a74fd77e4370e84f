"""Hand anomalies to Alertmanager without ever blocking the scoring path.

The scoring thread only puts events on a bounded queue; one sender thread drains it, batches what
is waiting into one ``POST /api/v2/alerts`` and retries on :class:`UpstreamUnavailable` with
backoff. When the queue is full the oldest event is dropped and counted: a late page is worth
less than keeping ingest alive.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vigil.alerting.client import AlertmanagerClient, rfc3339
from vigil.detection.stats import ServiceStats
from vigil.errors import BadRequest, UpstreamUnavailable
from vigil.events import Anomaly

log = logging.getLogger(__name__)

ALERT_NAME = "VigilAnomaly"


def anomaly_to_alert(event: Anomaly, *, resend_s: float, generator_url: str = "") -> dict[str, Any]:
    top = max(event.contributions, key=lambda c: c.share, default=None)
    labels = {"alertname": ALERT_NAME, "entity": event.entity, "source": "vigil", "severity": "warning"}
    annotations = {
        "summary": f"anomalous behaviour on {event.entity} (score {event.score:.2f} > {event.threshold:.2f})",
        "score": f"{event.score:.4f}",
        "threshold": f"{event.threshold:.4f}",
        "model_version": event.model_version,
    }
    if top is not None:
        annotations["top_metric"] = top.metric
        annotations["contributions"] = ", ".join(f"{c.metric}={c.share:.2f}" for c in event.contributions[:5])
    alert: dict[str, Any] = {"labels": labels, "annotations": annotations, "startsAt": rfc3339(event.timestamp)}
    now = time.time()
    # Active alerts carry an end a few resends ahead: if Vigil dies, Alertmanager resolves them itself.
    alert["endsAt"] = rfc3339(now + 3 * resend_s) if event.active else rfc3339(now)
    if generator_url:
        alert["generatorURL"] = generator_url
    return alert


class AlertDispatcher:
    def __init__(
        self,
        post: Callable[[Sequence[Mapping[str, Any]]], None],
        *,
        stats: ServiceStats | None = None,
        resend_s: float = 60.0,
        max_queue: int = 10_000,
        max_batch: int = 200,
        generator_url: str = "",
    ) -> None:
        self._post = post
        self.stats = stats or ServiceStats()
        self.resend_s = resend_s
        self.max_batch = max_batch
        self.generator_url = generator_url
        self._queue: queue.Queue[tuple[Anomaly, float]] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vigil-alerts", daemon=True)
        self._thread.start()

    @classmethod
    def to_alertmanager(cls, url: str, **kwargs: Any) -> AlertDispatcher:
        client = AlertmanagerClient(url, timeout_s=5.0)
        return cls(client.post_alerts, **kwargs)

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

    def _run(self) -> None:
        backoff = 0.1
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
            alerts = [anomaly_to_alert(e, resend_s=self.resend_s, generator_url=self.generator_url) for e, _ in batch]
            while not self._stop.is_set():
                try:
                    self._post(alerts)
                except UpstreamUnavailable as exc:
                    self.stats.counters.inc("alerts", "retried", len(alerts))
                    log.warning("Alertmanager unavailable, retrying in %.1fs: %s", backoff, exc)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                except BadRequest as exc:
                    self.stats.counters.inc("alerts", "rejected", len(alerts))
                    log.error("Alertmanager rejected %d alerts: %s", len(alerts), exc)
                except Exception:
                    self.stats.counters.inc("alerts", "failed", len(alerts))
                    log.exception("sending alerts failed")
                else:
                    done = time.perf_counter()
                    for _, scored_at in batch:
                        self.stats.score_to_alert.observe(done - scored_at)
                    self.stats.counters.inc("alerts", "sent", len(alerts))
                backoff = 0.1
                break
