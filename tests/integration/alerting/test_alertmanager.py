"""Alerts against a real Alertmanager 0.25: delivery, re-post, resolve, outage, silences."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.alerting.amprocess import AlertmanagerProcess
from vigil.alerting import AlertmanagerClient, AlertSender, Matcher, matcher_string
from vigil.alerting.client import parse_rfc3339
from vigil.config import Settings
from vigil.events import Anomaly, Contribution
from vigil.tokens import webhook_token_file

pytestmark = pytest.mark.integration

# Two minutes, as the alerting issue asks. The outage is longer than the alert TTL used below, so an
# alert built before the outage would already have expired: the sender must compute endsAt at send
# time. VIGIL_TEST_AM_OUTAGE_S shortens it for a quick local loop.
OUTAGE_S = float(os.environ.get("VIGIL_TEST_AM_OUTAGE_S", "120"))

CONTRIB = (
    Contribution("node_cpu_busy_ratio", 0.97, 0.21, 0.62),
    Contribution("node_load1", 7.5, 0.8, 0.25),
)


def anomaly(entity: str, *, active: bool = True, ts: float | None = None) -> Anomaly:
    return Anomaly(entity, time.time() if ts is None else ts, 0.91, 0.8, active, CONTRIB, {"iforest": 0.9}, "v3")


@pytest.fixture
def am(tmp_path: Path) -> Iterator[AlertmanagerProcess]:
    proc = AlertmanagerProcess(tmp_path)
    proc.start()
    yield proc
    proc.stop()


def wait_until(predicate, timeout_s: float, what: str):  # noqa: ANN001, ANN201 - tiny test helper
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


def test_alert_with_top_metrics_lands_then_is_kept_alive_and_resolved(am: AlertmanagerProcess) -> None:
    sender = AlertSender(
        AlertmanagerClient(am.url), resend_interval_s=1.0, alert_ttl_s=3.0, prometheus_url="http://127.0.0.1:19090"
    )
    assert sender.process([anomaly("web-1:9100")]) == 1
    alerts = wait_until(lambda: am.alerts(entity="web-1:9100"), 10, "the alert in Alertmanager")
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["labels"] == {
        "alertname": "VigilAnomaly",
        "entity": "web-1:9100",
        "severity": "warning",
        "detector": "ensemble",
    }
    assert "node_cpu_busy_ratio=0.97 (baseline 0.21, 62%)" in alert["annotations"]["top_metrics"]
    assert "node_load1" in alert["annotations"]["summary"]
    assert alert["annotations"]["score"] == "0.9100"
    assert alert["generatorURL"].startswith("http://127.0.0.1:19090/graph?")
    first_end = parse_rfc3339(alert["endsAt"])

    # Twice the TTL later, re-posts have kept it firing with a later endsAt, and it is still one alert.
    sender.start(interval_s=0.2)
    try:
        for _ in range(30):
            sender.process([anomaly("web-1:9100")], flush=False)
            time.sleep(0.2)
        alerts = am.alerts(entity="web-1:9100")
        assert len(alerts) == 1 and alerts[0]["status"]["state"] == "active"
        assert parse_rfc3339(alerts[0]["endsAt"]) > first_end + 4
        assert 4 <= sender.stats().sent <= 9  # about one re-post per second, not one per step

        sender.process([anomaly("web-1:9100", active=False)], flush=False)
        wait_until(lambda: not am.alerts(entity="web-1:9100"), 10, "the alert to resolve")
    finally:
        sender.stop()
    assert sender.firing_entities() == []


def test_an_episode_ending_on_a_step_stamped_ahead_of_the_clock_resolves_and_the_next_is_new(
    am: AlertmanagerProcess,
) -> None:
    """Serving stamps a step with the grid point at or after its samples and scores it as soon as they
    are in, so the step that ends an alarm can be stamped up to one step ahead of the clock. Alertmanager
    takes an ``endsAt`` in the future as "still firing until then" and keeps the later ``endsAt`` it
    already had: the alert stayed up for its whole TTL, and the next alarm of the entity was merged into
    it, so nobody was paged for it (the quick validation run's CPU fault, 2026-12-07)."""
    sender = AlertSender(AlertmanagerClient(am.url), resend_interval_s=60.0)  # TTL 240 s: only a resolve ends it
    t = time.time()
    sender.process([anomaly("ahead:9100", ts=t)])
    wait_until(lambda: am.alerts(entity="ahead:9100"), 10, "the first alert")
    sender.process([anomaly("ahead:9100", active=False, ts=time.time() + 0.9)])
    assert not am.alerts(entity="ahead:9100"), "the resolve stamped ahead of the clock left the alert firing"

    resolved_at = time.time()
    sender.process([anomaly("ahead:9100", ts=resolved_at + 0.5)])
    alerts = wait_until(lambda: am.alerts(entity="ahead:9100"), 10, "the second episode's alert")
    # Its own episode, begun when it was posted (not in the future): not merged into the first.
    assert resolved_at - 0.001 <= parse_rfc3339(alerts[0]["startsAt"]) <= time.time(), alerts[0]["startsAt"]


def test_alertmanager_down_during_an_anomaly_then_back(am: AlertmanagerProcess) -> None:
    sender = AlertSender(
        AlertmanagerClient(am.url, timeout_s=1.0), resend_interval_s=1.0, alert_ttl_s=4.0, max_backoff_s=2.0
    )
    sender.process([anomaly("before:9100")])  # already firing when the outage starts
    wait_until(lambda: am.alerts(entity="before:9100"), 10, "the pre-outage alert")

    am.stop()
    outage_start = time.time()
    sender.start(interval_s=0.2)
    try:
        started = time.time()
        sender.process([anomaly("during:9100", ts=started)], flush=False)
        sender.process([anomaly("before:9100", active=False)], flush=False)  # ends while Alertmanager is down
        while time.time() - outage_start < OUTAGE_S:
            sender.process([anomaly("during:9100")], flush=False)
            time.sleep(0.5)
        stats = sender.stats()
        assert stats.sent == 1 and stats.failed_attempts >= 2 and stats.pending == 2

        am.start()
        alerts = wait_until(lambda: am.alerts(entity="during:9100"), 15, "the queued alert after the outage")
        assert alerts[0]["status"]["state"] == "active"
        assert abs(parse_rfc3339(alerts[0]["startsAt"]) - started) < 0.01  # when it began, not when delivered
        assert parse_rfc3339(alerts[0]["endsAt"]) > time.time()
        # Alertmanager keeps alerts in memory only, so after a restart it knows what the sender re-posts:
        # the still-firing "during", and the resolve of "before" (not a stale firing copy of it).
        assert not am.alerts(entity="before:9100")
        wait_until(lambda: sender.stats().pending == 0, 10, "the queue to drain")
        assert sender.stats().dropped == 0 and sender.firing_entities() == ["during:9100"]
    finally:
        sender.stop()


def test_silence_round_trip(am: AlertmanagerProcess) -> None:
    client = AlertmanagerClient(am.url)
    sender = AlertSender(client)
    sender.process([anomaly("db-9:9100")])
    wait_until(lambda: am.alerts(entity="db-9:9100"), 10, "the alert")
    silence_id = client.create_silence(
        [Matcher("entity", "db-9:9100")], duration_s=1800, created_by="test", comment="maintenance"
    )
    silenced = wait_until(
        lambda: [a for a in am.alerts(entity="db-9:9100") if a["status"]["state"] == "suppressed"], 10, "suppression"
    )
    assert silenced[0]["status"]["silencedBy"] == [silence_id]
    listed = client.list_silences(filters=[matcher_string("entity", "db-9:9100")])
    assert [s["id"] for s in listed if s["status"]["state"] == "active"] == [silence_id]
    ends = parse_rfc3339(listed[0]["endsAt"]) - parse_rfc3339(listed[0]["startsAt"])
    assert abs(ends - 1800) < 1
    client.expire_silence(silence_id)
    wait_until(lambda: am.alerts(entity="db-9:9100")[0]["status"]["state"] == "active", 10, "unsilenced")


def test_shipped_config_sends_one_chat_notification_per_anomaly(tmp_path: Path) -> None:
    """Vigil's alert and the Prometheus rule's copy of it reach Alertmanager; only Vigil's is notified."""
    from tests.unit.alerting.httppeer import HTTPPeer

    with HTTPPeer() as hook:
        url = f"http://127.0.0.1:{hook.port}/v1/alertmanager"
        token_file = webhook_token_file(Settings(home=tmp_path / "home"))
        am = AlertmanagerProcess(tmp_path, webhook_url=url, shipped_config=True, webhook_token_file=str(token_file))
        am.start()
        try:
            sender = AlertSender(AlertmanagerClient(am.url))
            sender.process([anomaly("web-1:9100")])
            rule = {"alertname": "VigilAnomalyDetected", "source": "prometheus"}
            rule_copy = {"labels": {**rule, "entity": "web-1:9100"}}
            other = {"labels": {**rule, "entity": "db-1:9100"}}
            AlertmanagerClient(am.url).post_alerts([rule_copy, other])
            wait_until(lambda: len(am.alerts()) >= 3, 10, "all three alerts in Alertmanager")
            time.sleep(4)  # group_wait 1 s + group_interval 1 s, twice over
            notified = {
                (a["labels"]["alertname"], a["labels"]["entity"]) for r in hook.requests for a in r.json()["alerts"]
            }
        finally:
            am.stop()
    # The rule's copy for an entity Vigil alerts on is muted; for another entity it still goes out.
    assert notified == {("VigilAnomaly", "web-1:9100"), ("VigilAnomalyDetected", "db-1:9100")}
    # Alertmanager authenticates with the token file the configuration names, as the webhook requires.
    assert {r.headers["Authorization"] for r in hook.requests} == {f"Bearer {token_file.read_text()}"}
