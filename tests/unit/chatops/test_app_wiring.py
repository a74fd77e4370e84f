"""The module-level blueprint, mounted by the serving app factory, wires itself from the app context."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

from vigil.chatops.slack import slack_signature
from vigil.config import Settings
from vigil.server.app import create_app
from vigil.tokens import webhook_token_file


def webhook_auth(settings: Settings) -> dict[str, str]:
    """What Alertmanager sends, from the credentials_file the rendered configuration names."""
    return {"Authorization": f"Bearer {webhook_token_file(settings).read_text()}"}


def test_serving_app_mounts_chatops(vigil_home: Path) -> None:
    settings = Settings(home=vigil_home, slack_signing_secret="s", prometheus_url="http://127.0.0.1:9")
    client = create_app(settings, start=False).test_client()
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
    settings = Settings(home=vigil_home, prometheus_url="http://127.0.0.1:9", alertmanager_url="http://127.0.0.1:9")
    client = create_app(settings, start=False).test_client()
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


def _alert(entity: str) -> dict:
    return {"status": "firing", "labels": {"alertname": "VigilAnomaly", "entity": entity},
            "annotations": {"contributions": "load1=0.50"}}  # fmt: skip


def test_the_webhook_takes_the_token_as_basic_auth_password_too(vigil_home: Path) -> None:
    """Alertmanager's http_config can send basic_auth instead of a bearer token."""
    settings = Settings(home=vigil_home, prometheus_url="http://127.0.0.1:9")
    client = create_app(settings, start=False).test_client()
    token = webhook_token_file(settings).read_text()
    payload = {"version": "4", "status": "firing", "alerts": [_alert("db-1:9100")]}

    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    assert client.post("/v1/alertmanager", json=payload, headers=basic("alertmanager", token)).status_code == 200
    for headers in (basic("alertmanager", "guessed"), basic(token, ""), {"Authorization": "Basic %%%"}):
        assert client.post("/v1/alertmanager", json=payload, headers=headers).status_code == 401


def test_the_webhook_handles_a_bounded_number_of_alerts_a_minute(vigil_home: Path) -> None:
    settings = Settings(home=vigil_home, prometheus_url="http://127.0.0.1:9", chatops={"webhook_alerts_per_minute": 3})
    client = create_app(settings, start=False).test_client()
    auth = webhook_auth(settings)
    two = {"version": "4", "status": "firing", "alerts": [_alert("a:9100"), _alert("b:9100")]}
    assert client.post("/v1/alertmanager", json=two, headers=auth).status_code == 200
    over = client.post("/v1/alertmanager", json=two, headers=auth)  # 1 left, 2 asked: wait ~20 s for one more
    assert over.status_code == 503 and "3 alerts a minute" in over.json["error"]
    assert 1 <= int(over.headers["Retry-After"]) <= 21  # Alertmanager retries a 503
    one = {"version": "4", "status": "firing", "alerts": [_alert("c:9100")]}
    assert client.post("/v1/alertmanager", json=one, headers=auth).status_code == 200


def test_a_chunked_webhook_body_is_capped_while_it_is_read(vigil_home: Path) -> None:
    """No Content-Length to refuse up front: the cap applies to the stream itself."""
    from vigil.server.chatops_bp import MAX_WEBHOOK_BYTES

    settings = Settings(home=vigil_home, prometheus_url="http://127.0.0.1:9")
    client = create_app(settings, start=False).test_client()
    body = b'{"alerts": [' + b'{"status": "firing"},' * (MAX_WEBHOOK_BYTES // 20) + b"{}]}"
    resp = client.post(
        "/v1/alertmanager",
        input_stream=io.BytesIO(body),
        headers={**webhook_auth(settings), "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert resp.status_code == 413
