"""Slack slash commands through the real blueprint, signed with real HMAC-SHA256."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.unit.alerting.httppeer import HTTPPeer
from vigil.chatops.commands import ChatOps, parse_command
from vigil.chatops.explain import DeterministicExplainer
from vigil.chatops.notify import AppriseNotifier
from vigil.chatops.slack import SlackVerifier, slack_signature
from vigil.config import Settings
from vigil.detection.incidents import IncidentTracker, Topology
from vigil.errors import BadRequest, Unauthorized
from vigil.events import Anomaly, Contribution
from vigil.server.chatops_bp import create_chatops_blueprint
from vigil.server.errors import register_error_handlers

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ANOMALIES = [
    Anomaly("web-1:9100", 1.7e9, 0.97, 0.8, True, (Contribution("cpu_busy", 0.98, 0.2, 0.7),)),
    Anomaly("db-1:9100", 1.7e9, 0.1, 0.8, False, (Contribution("mem_used_ratio", 0.4, 0.4, 0.1),)),
]


def make_app(silences: list[tuple[str, float, str, str]]) -> Flask:
    def silencer(entity: str, duration_s: float, by: str, comment: str) -> str:
        silences.append((entity, duration_s, by, comment))
        return "silence-1"

    chat = ChatOps(anomalies=lambda: ANOMALIES, explainer=DeterministicExplainer(), silencer=silencer)
    app = Flask("t")
    register_error_handlers(app)
    settings = Settings(slack_signing_secret=SECRET)
    app.register_blueprint(create_chatops_blueprint(settings, chatops=chat, notifier=AppriseNotifier([])))
    return app


@pytest.fixture
def silences() -> list[tuple[str, float, str, str]]:
    return []


@pytest.fixture
def client(silences: list[tuple[str, float, str, str]]) -> FlaskClient:
    return make_app(silences).test_client()


def slash(text: str) -> bytes:
    # No response_url: explain answers in the response itself (with one, it answers there later).
    fields = {"command": "/vigil", "text": text, "user_name": "alice"}
    return urllib.parse.urlencode(fields).encode()


def post(client: FlaskClient, body: bytes, *, ts: int | None = None, sign: Callable[[str, bytes], str] | None = None):  # noqa: ANN201
    stamp = str(int(time.time()) if ts is None else ts)
    signature = (sign or (lambda t, b: slack_signature(SECRET, t, b)))(stamp, body)
    return client.post(
        "/v1/slack/commands",
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature},
    )


def test_signed_status_and_explain(client: FlaskClient) -> None:
    resp = post(client, slash("status"))
    assert resp.status_code == 200
    assert "1 of 2 entities anomalous" in resp.json["text"] and "web-1:9100" in resp.json["text"]
    resp = post(client, slash("explain web-1:9100"))
    assert resp.status_code == 200 and "signature: cpu_saturation" in resp.json["text"]
    resp = post(client, slash("explain"))  # the most anomalous one
    assert "web-1:9100" in resp.json["text"]


def test_silence_through_the_command(client: FlaskClient, silences: list) -> None:
    resp = post(client, slash("silence web-1:9100 30m"))
    assert resp.status_code == 200 and "silence-1" in resp.json["text"]
    assert silences == [("web-1:9100", 1800.0, "slack:alice", "silenced from chat by slack:alice for 30m")]
    resp = post(client, slash("silence web-1:9100 forever"))
    assert resp.json["response_type"] == "ephemeral" and "cannot read duration" in resp.json["text"]


def test_bad_signature_is_401(client: FlaskClient) -> None:
    resp = post(client, slash("status"), sign=lambda t, b: slack_signature("wrong-secret", t, b))
    assert resp.status_code == 401
    resp = post(client, slash("status"), sign=lambda t, b: slack_signature(SECRET, t, b + b"&text=silence"))
    assert resp.status_code == 401
    resp = client.post("/v1/slack/commands", data=slash("status"), content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 401


def test_stale_or_future_timestamp_is_401_even_when_correctly_signed(client: FlaskClient) -> None:
    assert post(client, slash("status"), ts=int(time.time()) - 301).status_code == 401
    assert post(client, slash("status"), ts=int(time.time()) + 301).status_code == 401
    assert post(client, slash("status"), ts=int(time.time()) - 200).status_code == 200


def test_replayed_request_is_401(client: FlaskClient) -> None:
    body, ts = slash("status"), int(time.time())
    assert post(client, body, ts=ts).status_code == 200
    assert post(client, body, ts=ts).status_code == 401


def test_verifier_forgets_after_the_window() -> None:
    now = [1_700_000_000.0]
    verifier = SlackVerifier(SECRET, clock=lambda: now[0])
    sig = slack_signature(SECRET, "1700000000", b"x")
    verifier.verify("1700000000", sig, b"x")
    with pytest.raises(Unauthorized):
        verifier.verify("1700000000", sig, b"x")
    now[0] += 400  # too old to replay anyway, and no longer remembered
    with pytest.raises(Unauthorized, match="stale"):
        verifier.verify("1700000000", sig, b"x")
    fresh = str(int(now[0]))
    verifier.verify(fresh, slack_signature(SECRET, fresh, b"x"), b"x")
    assert list(verifier._seen.values()) == [int(now[0])]  # memory stays bounded by the window
    with pytest.raises(Unauthorized, match="disabled"):
        SlackVerifier("").verify("1", "v0=00", b"")


def test_deferred_explain_posts_to_the_response_url() -> None:
    # Slack gets an immediate ack and the answer later at response_url (here: an LLM that is down).
    from vigil.chatops.llm import LLMExplainer
    from vigil.config import LLMSettings

    with HTTPPeer() as slack:
        chat = ChatOps(
            anomalies=lambda: ANOMALIES,
            # No server at this address: the answer falls back to the deterministic text, still deferred.
            explainer=LLMExplainer(LLMSettings(base_url="http://127.0.0.1:9/v1", model="m", timeout_s=1, retries=0)),
        )
        app = Flask("t")
        register_error_handlers(app)
        app.register_blueprint(
            create_chatops_blueprint(
                Settings(slack_signing_secret=SECRET),
                chatops=chat,
                notifier=AppriseNotifier([]),
                response_url_prefixes=[slack.url],
            )
        )
        fields = {"text": "explain web-1:9100", "user_name": "bob", "response_url": f"{slack.url}/commands/1"}
        resp = post(app.test_client(), urllib.parse.urlencode(fields).encode())
        assert resp.status_code == 200 and "Looking into web-1:9100" in resp.json["text"]
        answer = slack.wait_for(1)[0]
        assert answer.path == "/commands/1" and "signature: cpu_saturation" in answer.json()["text"]


def test_incident_feedback_through_the_command() -> None:
    """``ack`` and ``false-positive`` reach the incidents (a real tracker), by the Slack user who sent them."""
    tracker = IncidentTracker(Topology())
    (opened,) = tracker.observe("web-1:9100", 100.0, True)

    def feedback(incident_id: str, action: str, by: str, note: str) -> dict:
        return tracker.feedback(incident_id, action, by=by, note=note, now=101.0).to_dict()

    chat = ChatOps(anomalies=lambda: ANOMALIES, explainer=DeterministicExplainer(), feedback=feedback)
    app = Flask("t")
    register_error_handlers(app)
    app.register_blueprint(
        create_chatops_blueprint(Settings(slack_signing_secret=SECRET), chatops=chat, notifier=AppriseNotifier([]))
    )
    client, incident_id = app.test_client(), opened.incident.id
    resp = post(client, slash(f"ack {incident_id}"))
    assert (
        resp.status_code == 200
        and resp.json["text"] == f"Incident {incident_id} (web-1:9100) acknowledged by slack:alice."
    )
    resp = post(client, slash(f"false-positive {incident_id} a planned load test"))
    assert "marked a false positive" in resp.json["text"]
    assert (tracker.open[0].verdict, tracker.open[0].note, tracker.open[0].acknowledged) == (
        "false_positive", "a planned load test", 101.0)  # fmt: skip
    resp = post(client, slash("confirm 0000"))
    assert resp.json["response_type"] == "ephemeral" and "no incident '0000'" in resp.json["text"]
    # Without the detection service (the CLI's chat), feedback says where it goes.
    alone = ChatOps(anomalies=list, explainer=DeterministicExplainer()).handle(f"ack {incident_id}")
    assert not alone.ok and "goes to the Vigil service" in alone.text


def test_parse_command() -> None:
    assert parse_command("").name == "help"
    assert parse_command("status").name == "status"
    assert parse_command("explain").entity is None
    assert parse_command('explain "my host"').entity == "my host"
    assert parse_command("silence db-1 1h30m").duration_s == 5400
    assert parse_command("false-positive 0a1b load test").note == "load test"
    for bad in ("status now", "explain a b", "silence db-1", "rm -rf /", "x" * 2000, "ack"):
        with pytest.raises(BadRequest):
            parse_command(bad)
