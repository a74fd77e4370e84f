"""``GET /metrics``: a custom collector renders the detection state at scrape time (no global gauges).

Label cardinality is bounded on purpose: ``entity`` is capped by ``serving.max_entities``,
``metric`` takes only the model's own signal names (one top metric per entity), ``detector`` the
ensemble's members.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from vigil.detection.service import DetectionService
from vigil.detection.stats import LatencyHistogram

bp = Blueprint("metrics", __name__)


def _histogram(name: str, doc: str, hist: LatencyHistogram) -> HistogramMetricFamily:
    buckets, total = hist.snapshot()
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=total)


class DetectionCollector:
    def __init__(self, service: DetectionService) -> None:
        self.service = service

    def describe(self) -> list[Metric]:
        return []  # families depend on live state; describing them would freeze that at registration

    def collect(self) -> Iterator[Metric]:
        svc = self.service
        engine = svc.engine
        score = GaugeMetricFamily(
            "vigil_anomaly_score", "Calibrated ensemble anomaly score in [0, 1]", labels=["entity"]
        )
        alarm = GaugeMetricFamily("vigil_anomaly", "1 while the entity's anomaly alarm is active", labels=["entity"])
        top = GaugeMetricFamily(
            "vigil_anomaly_top_metric",
            "Share of the score due to the top contributing metric",
            labels=["entity", "metric"],
        )
        detector = GaugeMetricFamily(
            "vigil_detector_score", "Calibrated score of one ensemble member", labels=["entity", "detector"]
        )
        last = GaugeMetricFamily(
            "vigil_last_scored_timestamp_seconds", "Timestamp of the last scored step", labels=["entity"]
        )
        for view in engine.views():
            score.add_metric([view.entity], view.score)
            alarm.add_metric([view.entity], 1.0 if view.alarm else 0.0)
            last.add_metric([view.entity], view.timestamp)
            if view.top_metric:
                top.add_metric([view.entity, view.top_metric], view.top_share)
            for name, value in view.detector_scores.items():
                detector.add_metric([view.entity, name], value)
        yield from (score, alarm, top, detector, last)

        loaded = engine.loaded
        info = GaugeMetricFamily(
            "vigil_model_info", "The models being served", labels=["model", "version", "fast_path"]
        )
        paging = GaugeMetricFamily(
            "vigil_model_paging",
            "1 when the model's anomalies page, 0 in shadow mode (scored, never sent)",
            labels=["model"],
        )
        for name, each in svc.engines.loaded_engines():
            model = each.loaded
            if model is not None:
                info.add_metric([name or "default", model.version, str(model.fast).lower()], 1.0)
                paging.add_metric([name or "default"], 1.0 if each.paging else 0.0)
        yield info
        yield paging
        yield GaugeMetricFamily("vigil_model_loaded", "1 when a model is loaded", value=float(loaded is not None))
        yield GaugeMetricFamily("vigil_ready", "1 when /readyz passes", value=float(svc.readiness().ready))
        yield GaugeMetricFamily("vigil_entities", "Entities with streaming state", value=float(engine.entity_count()))
        age = time.time() - engine.last_ingest_at
        yield GaugeMetricFamily(
            "vigil_seconds_since_last_sample",
            "Seconds since remote_write last delivered a usable sample",
            value=age if age != float("inf") else -1.0,
        )
        if svc.dispatcher is not None:
            yield GaugeMetricFamily(
                "vigil_alert_queue_length",
                "Anomaly events waiting for Alertmanager",
                value=float(svc.dispatcher.pending()),
            )

        stats = svc.stats
        yield _histogram(
            "vigil_ingest_to_score_seconds",
            "From the sample's request arriving to its step scored",
            stats.ingest_to_score,
        )
        yield _histogram(
            "vigil_score_to_alert_seconds",
            "From a step scored to Alertmanager accepting its alert",
            stats.score_to_alert,
        )
        yield _histogram(
            "vigil_remote_write_request_seconds", "Time to handle one remote_write request", stats.request_seconds
        )
        for name, label, doc in (
            ("remote_write_requests", "code", "remote_write requests by response status"),
            ("samples", "outcome", "remote_write samples by what happened to them"),
            ("steps", "outcome", "entity steps assembled"),
            ("alerts", "outcome", "alerts handed to Alertmanager"),
            ("chat_messages", "outcome", "messages posted to chat (delivered, failed, no_chat: none configured)"),
            ("model_reloads", "outcome", "model loads and hot swaps"),
            ("predictions", "kind", "rows scored through /v1/predict"),
            ("scoring_errors", "kind", "steps whose scoring raised"),
            ("entities", "event", "entities that fell silent or were forgotten after idling"),
        ):
            family = CounterMetricFamily(f"vigil_{name}", doc, labels=[label])
            for value, count in stats.counters.items(name):
                family.add_metric([value or "all"], count)
            yield family


@bp.get("/metrics")
def metrics() -> Response:
    registry: CollectorRegistry = current_app.extensions["vigil"].registry
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
