"""Alertmanager integration: anomalies in, API v2 alerts and silences out.

Wiring in the detection service::

    sender = alert_sender_from_settings(settings)
    sender.start()                       # re-posts and retries from a daemon thread
    ...
    sender.process(anomalies, flush=False)  # each scoring step, one Anomaly per entity (active or not)
    ...
    sender.stop()                        # on shutdown: one last delivery attempt
"""

from __future__ import annotations

from vigil.alerting.client import MAX_SILENCE_S, AlertmanagerClient, Matcher, matcher_string, rfc3339
from vigil.alerting.sender import ALERTNAME, AlertSender, SenderStats, default_severity
from vigil.config import Settings

__all__ = [
    "ALERTNAME",
    "MAX_SILENCE_S",
    "AlertSender",
    "AlertmanagerClient",
    "Matcher",
    "SenderStats",
    "alert_sender_from_settings",
    "default_severity",
    "matcher_string",
    "rfc3339",
]


def alert_sender_from_settings(settings: Settings) -> AlertSender:
    return AlertSender(
        AlertmanagerClient(settings.effective_alertmanager_url),
        resend_interval_s=settings.serving.alert_resend_s,
        alert_ttl_s=max(settings.alerting.alert_ttl_s, 2 * settings.serving.alert_resend_s),
        max_pending=settings.alerting.max_pending,
        detector=settings.alerting.detector_label,
        ui_url=settings.alerting.ui_url,
        prometheus_url=settings.chatops.public_prometheus_url or settings.effective_prometheus_url,
    )
