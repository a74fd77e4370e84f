"""What a campaign reads back from the stack as evidence: the alerts Alertmanager received, the
series Prometheus recorded, and (without a detection service) the champion's replayed alarms."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import requests

from vigil.config import Settings
from vigil.errors import VigilError
from vigil.timeindex import unix_seconds

log = logging.getLogger("vigil.validation")


ANOMALY_ALERTS = ("VigilAnomaly", "VigilAnomalyDetected")  # Vigil's own sender, and the Prometheus rule


PLOT_QUERIES = {
    "cpu_busy": '1 - avg(rate(node_cpu_seconds_total{mode=~"idle|steal|nice"}[5s]))',
    "mem_available_bytes": "sum(node_memory_MemAvailable_bytes)",
    "disk_write_bytes_per_s": "sum(rate(node_disk_written_bytes_total[5s]))",
    "disk_io_busy": "max(rate(node_disk_io_time_seconds_total[5s]))",
    # `or vector(0)`: before the first error there is no 5xx series at all, which is a rate of 0, not a gap.
    "demo_error_rate": '(sum(rate(demo_http_requests_total{code=~"5.."}[5s])) or vector(0))'
    " / sum(rate(demo_http_requests_total[5s]))",
    "demo_request_rate": "sum(rate(demo_http_requests_total[5s]))",
    "demo_p90_latency_s": "histogram_quantile(0.9, sum by (le) (rate(demo_http_request_duration_seconds_bucket[5s])))",
    "demo_up": 'max(up{job="demo"})',
}


class AlertmanagerWatch:
    """Polls Alertmanager every second and remembers when each anomaly alert was first seen there."""

    def __init__(self, url: str, interval_s: float = 1.0) -> None:
        self.url = url.rstrip("/")
        self.interval_s = interval_s
        self.first_seen: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="am-watch", daemon=True)
        self.errors = 0

    def __enter__(self) -> AlertmanagerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                now = time.time()
                try:
                    resp = session.get(f"{self.url}/api/v2/alerts", timeout=2)
                    resp.raise_for_status()
                    for alert in resp.json():
                        if alert.get("status", {}).get("state", "active") != "active":
                            continue
                        # An alert that resolves and fires again keeps its fingerprint but gets a new startsAt.
                        key = f"{alert.get('fingerprint', '')}@{alert.get('startsAt', '')}"
                        if key not in self.first_seen:
                            self.first_seen[key] = {
                                "alertname": alert.get("labels", {}).get("alertname", ""),
                                "labels": alert.get("labels", {}),
                                "annotations": alert.get("annotations", {}),
                                "startsAt": alert.get("startsAt", ""),
                                "seen": now,
                            }
                except (requests.RequestException, ValueError):
                    self.errors += 1
                self._stop.wait(self.interval_s)

    def anomaly_alert_times(self) -> list[float]:
        return sorted(a["seen"] for a in self.first_seen.values() if a["alertname"] in ANOMALY_ALERTS)


def prom_client(settings: Settings) -> Any:
    from vigil.prometheus import PromClient

    return PromClient(settings.effective_prometheus_url)


def prom_range(prom: Any, expr: str, t0: float, t1: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    try:
        series = prom.query_range(expr, t0, t1, step)
    except VigilError as exc:
        log.warning("query %s failed: %s", expr, exc)
        return np.array([]), np.array([])
    if not series:
        return np.array([]), np.array([])
    s = series[0]
    return np.asarray(s.timestamps, dtype=np.float64), np.asarray(s.values, dtype=np.float64)


def replay_scores(
    settings: Settings, t0: float, t1: float, warm_s: float
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], int]:
    """Fallback when the stack has no detection service: score the recorded data with the champion.

    Batch scoring equals streaming (tested in the detectors package), so the alarms are the ones the
    service would have raised; there is no Alertmanager leg. Returns (alarm, score, entities), each
    series the max over entities on the scrape grid.
    """
    from vigil.ingest import signals
    from vigil.registry import ModelRegistry

    prom = prom_client(settings)
    registry = ModelRegistry(settings)
    step = settings.scrape_interval_s
    alarms, scores = [], []
    for entity in signals.list_entities(settings=settings):
        frame = signals.load_entity_frame(prom, entity, start=t0 - warm_s, end=t1, step=step, settings=settings)
        _info, model = registry.load(entity, "champion")
        out = model.score_frame(frame)
        ts = unix_seconds(frame.index)
        alarms.append(pd.Series(out["alarm"].astype(float).to_numpy(), index=ts))
        scores.append(pd.Series(out["score"].astype(float).to_numpy(), index=ts))
    if not alarms:
        raise VigilError("no entity to score in the campaign period")
    alarm = pd.concat(alarms, axis=1).max(axis=1).sort_index()
    score = pd.concat(scores, axis=1).max(axis=1).sort_index()
    keep = alarm.index >= t0
    return (
        (alarm.index.to_numpy()[keep], alarm.to_numpy()[keep]),
        (score.index.to_numpy(), score.to_numpy()),
        len(alarms),
    )
