"""The module-level blueprint, mounted by the serving app factory, wires itself from the app context."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vigil.chatops.slack import slack_signature
from vigil.config import Settings
from vigil.tokens import webhook_token_file


def webhook_auth(settings: Settings) -> dict[str, str]:
    """What Alertmanager sends, from the credentials_file the rendered configuration names."""
    return {"Authorization": f"Bearer {webhook_token_file(settings).read_text()}"}


def test_serving_app_mounts_chatops(vigil_home: Path) -> None:
    app_module = pytest.importorskip("vigil.server.app")
    settings = Settings(home=vigil_home, slack_signing_secret="s", prometheus_url="http://127.0.0.1:9")
    client = app_module.create_app(settings, start=False).test_client()
    body = b"text=status&user_name=dave"
    assert (
        client.post("/v1/slack/commands", data=body, content_type="application/x-www-form-urlencoded").status_code
        == 401
    )
    ts = str(int(time.time()))
    resp = client.post(
        "/v1/slack/commands",
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": slack_signature("s", ts, body)},
    )
    assert resp.status_code == 200 and resp.json["text"] == "Vigil is not scoring any entity right now."
    # An alert in the serving dispatcher's annotation format, with Prometheus unreachable.
    alert = {
        "status": "firing",
        "labels": {"alertname": "VigilAnomaly", "entity": "db-1:9100"},
        "annotations": {"score": "0.9", "threshold": "0.8", "contributions": "mem_used_ratio=0.70, load1=0.20"},
    }
    payload = {"version": "4", "status": "firing", "alerts": [alert]}
    for headers in ({}, {"Authorization": "Bearer guessed"}):  # the webhook is not open to anyone on the network
        assert client.post("/v1/alertmanager", json=payload, headers=headers).status_code == 401
    resp = client.post("/v1/alertmanager", json=payload, headers=webhook_auth(settings))
    assert resp.status_code == 200
    assert resp.json["results"][0]["signature"] == "memory_pressure"


def test_the_rules_copy_of_vigils_own_alert_is_not_posted(vigil_home: Path) -> None:
    """The rule resolves an evaluation after Vigil's alert, when inhibition has already lapsed; the
    serving app (which sends VigilAnomaly itself) must not post that copy as a new anomaly."""
    app_module = pytest.importorskip("vigil.server.app")
    settings = Settings(home=vigil_home, prometheus_url="http://127.0.0.1:9", alertmanager_url="http://127.0.0.1:9")
    client = app_module.create_app(settings, start=False).test_client()
    copy = {"status": "firing", "labels": {"alertname": "VigilAnomalyDetected", "entity": "db-1:9100",
                                           "source": "prometheus"}}  # fmt: skip
    escalation = {"status": "firing", "labels": {**copy["labels"], "alertname": "VigilAnomalyCritical"},
                  "annotations": {"contributions": "mem_used_ratio=0.70, load1=0.20"}}  # fmt: skip
    resp = client.post(
        "/v1/alertmanager",
        json={"version": "4", "status": "firing", "alerts": [copy, escalation]},
        headers=webhook_auth(settings),
    )
    assert resp.status_code == 200
    first, second = resp.json["results"]
    assert first["skipped"] == "the Prometheus rule's copy of Vigil's own alert" and "signature" not in first
    assert second["signature"] == "memory_pressure"
