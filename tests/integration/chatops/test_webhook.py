"""Anomaly -> Vigil's alert -> real Alertmanager -> webhook -> explanation -> Apprise -> chat endpoint."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from typer.testing import CliRunner

from tests.integration.alerting.amprocess import AlertmanagerProcess
from tests.integration.chatops.conftest import FAKE_HOST, BackgroundServer, PromStack
from tests.unit.alerting.httppeer import HTTPPeer
from vigil.alerting import AlertmanagerClient, AlertSender
from vigil.chatops.slack import slack_signature
from vigil.config import Settings
from vigil.events import Anomaly, Contribution
from vigil.server.chatops_bp import create_chatops_blueprint
from vigil.server.errors import register_error_handlers
from vigil.validation.chatsink import parse_message

pytestmark = pytest.mark.integration
SECRET = "test-signing-secret"


@pytest.fixture
def chat_endpoints() -> Iterator[tuple[HTTPPeer, HTTPPeer]]:
    with HTTPPeer() as generic, HTTPPeer(body=b"ok") as mattermost:
        yield generic, mattermost


@pytest.fixture
def wired(
    tmp_path: Path, prom_stack: PromStack, chat_endpoints: tuple[HTTPPeer, HTTPPeer]
) -> Iterator[tuple[AlertmanagerProcess, BackgroundServer, Settings]]:
    generic, mattermost = chat_endpoints
    app = Flask("vigil-test")
    register_error_handlers(app)
    am_port_holder = AlertmanagerProcess(tmp_path)  # picks the port the settings must name
    settings = Settings(
        prometheus_url=prom_stack.prometheus_url,
        alertmanager_url=am_port_holder.url,
        slack_signing_secret=SECRET,
        # A generic JSON webhook and a Slack-compatible one (Mattermost incoming webhooks speak Slack's format).
        apprise_urls=[f"json://127.0.0.1:{generic.port}/hook", f"mmost://127.0.0.1:{mattermost.port}/tok3n"],
    )
    app.register_blueprint(create_chatops_blueprint(settings, anomalies=lambda: []))
    with BackgroundServer(app) as server:
        am = AlertmanagerProcess(tmp_path, webhook_url=f"{server.url}/v1/alertmanager", port=am_port_holder.port)
        am.start()
        try:
            yield am, server, settings
        finally:
            am.stop()


def test_firing_alert_reaches_chat_with_an_explanation(
    wired: tuple[AlertmanagerProcess, BackgroundServer, Settings], chat_endpoints: tuple[HTTPPeer, HTTPPeer]
) -> None:
    am, _, _ = wired
    generic, mattermost = chat_endpoints
    sender = AlertSender(AlertmanagerClient(am.url), resend_interval_s=5)
    anomaly = Anomaly(
        FAKE_HOST,
        time.time(),
        0.93,
        0.8,
        True,
        (Contribution("cpu_busy", 0.95, 0.2, 0.62), Contribution("load1", 7.5, 0.6, 0.3)),
        {"iforest": 0.95},
        "v3",
    )
    started = time.monotonic()
    sender.process([anomaly])
    message = generic.wait_for(1, timeout_s=30)[0].json()
    latency = time.monotonic() - started
    print(f"\nalert post -> chat message: {latency:.2f} s (Alertmanager group_wait 1 s)")
    assert message["title"].startswith(f"[FIRING] VigilAnomaly on {FAKE_HOST}: cpu saturation")
    body = message["message"]
    assert "signature: cpu_saturation" in body and "explained by: deterministic" in body
    assert "cpu_busy is 0.95 against a baseline of 0.2" in body  # the attribution carried by the alert
    assert "top -o %CPU" in body  # the runbook's first step
    assert "node_load1{instance=" in body  # a ready-to-run query
    slackish = mattermost.wait_for(1, timeout_s=10)[0]
    assert slackish.path == "/hooks/tok3n" and "cpu_saturation" in slackish.json()["text"]

    sender.process([Anomaly(FAKE_HOST, time.time(), 0.1, 0.8, False)])
    resolved = generic.wait_for(2, timeout_s=30)[1].json()
    assert resolved["title"] == f"[RESOLVED] VigilAnomaly on {FAKE_HOST}"


def test_a_group_resent_by_alertmanager_is_posted_once(
    wired: tuple[AlertmanagerProcess, BackgroundServer, Settings], chat_endpoints: tuple[HTTPPeer, HTTPPeer]
) -> None:
    """Alertmanager re-sends a group's whole alert list whenever the group changes; chat gets news only."""
    _, server, _ = wired
    generic, _ = chat_endpoints
    url = f"{server.url}/v1/alertmanager"
    host = {"status": "firing", "fingerprint": "f1", "startsAt": "2026-11-26T10:00:00Z",
            "labels": {"alertname": "VigilAnomaly", "entity": FAKE_HOST},
            "annotations": {"top_metrics": "cpu_busy is 0.97 against a baseline of 0.1 (share 80%)"}}  # fmt: skip
    assert requests.post(url, json={"alerts": [host]}, timeout=30).json()["notified"] == 1
    again = requests.post(url, json={"alerts": [host]}, timeout=30).json()
    assert again["notified"] == 0 and again["results"][0]["skipped"] == "already posted"
    refired = dict(host, startsAt="2026-11-26T10:05:00Z")  # resolved and firing again: news
    resolved = dict(host, status="resolved")
    assert requests.post(url, json={"alerts": [refired, resolved]}, timeout=30).json()["notified"] == 2
    titles = [r.json()["title"] for r in generic.wait_for(3, timeout_s=10)]
    assert len(titles) == 3 and titles[2] == f"[RESOLVED] VigilAnomaly on {FAKE_HOST}"


def test_the_alerts_of_one_incident_are_posted_once(
    wired: tuple[AlertmanagerProcess, BackgroundServer, Settings], chat_endpoints: tuple[HTTPPeer, HTTPPeer]
) -> None:
    """A host and the service on it alarm together: chat gets the incident's first alert, the other
    entity's as an update of it, and the first one's resolve."""
    _, server, _ = wired
    generic, _ = chat_endpoints
    url = f"{server.url}/v1/alertmanager"
    host = {
        "status": "firing",
        "fingerprint": "h1",
        "startsAt": "2026-11-26T10:00:00Z",
        "labels": {"alertname": "VigilAnomaly", "entity": FAKE_HOST},
        "annotations": {"top_metrics": "cpu_busy is 0.97 against a baseline of 0.1", "incident": "0a1b2c"},
    }
    service = {"status": "firing", "fingerprint": "s1", "startsAt": "2026-11-26T10:00:04Z",
               "labels": {"alertname": "VigilAnomaly", "entity": "demo"},
               "annotations": {"top_metrics": "latency_p99 is 0.9", "incident": "0a1b2c"}}  # fmt: skip
    first = requests.post(url, json={"alerts": [host]}, timeout=30).json()
    assert first["notified"] == 1 and first["results"][0]["incident"] == "0a1b2c"
    flapped = dict(host, startsAt="2026-11-26T10:00:30Z")  # the host alarming anew, its incident still open
    joined = requests.post(url, json={"alerts": [host, service, flapped]}, timeout=30).json()
    assert joined["notified"] == 1  # the service's alert, as an update
    assert [r.get("skipped") for r in joined["results"]] == [
        "already posted", None, "part of incident 0a1b2c, already in chat"]  # fmt: skip
    # The same service alarming in an incident of its own is news; a hostile annotation is no incident.
    apart = dict(service, fingerprint="s2", annotations={"incident": "9f8e7d"})
    odd = dict(service, fingerprint="s3", annotations=["incident"])
    assert requests.post(url, json={"alerts": [apart, odd]}, timeout=30).json()["notified"] == 2
    ends = [dict(service, status="resolved"), dict(host, status="resolved")]
    assert requests.post(url, json={"alerts": ends}, timeout=30).json()["notified"] == 1
    # Chat said the host is back to normal: its next alarm in the same incident is news again.
    relapse = dict(host, startsAt="2026-11-26T10:02:00Z")
    assert requests.post(url, json={"alerts": [relapse]}, timeout=30).json()["notified"] == 1
    messages = [r.json() for r in generic.wait_for(6, timeout_s=10)]
    parsed = [parse_message(m["title"], m["message"]) for m in messages]
    assert [(p["status"], p["entity"]) for p in parsed] == [
        ("firing", FAKE_HOST), ("update", "demo"), ("firing", "demo"), ("firing", "demo"),
        ("resolved", FAKE_HOST), ("firing", FAKE_HOST)]  # fmt: skip
    assert "Incident: 0a1b2c" in messages[0]["message"] and "(joins incident 0a1b2c)" in messages[1]["title"]


def test_webhook_rejects_garbage(wired: tuple[AlertmanagerProcess, BackgroundServer, Settings]) -> None:
    _, server, _ = wired
    url = f"{server.url}/v1/alertmanager"
    assert requests.post(url, data="x", headers={"Content-Type": "text/plain"}, timeout=5).status_code == 415
    assert requests.post(url, json={"nope": 1}, timeout=5).status_code == 400
    resp = requests.post(url, json={"alerts": [{"status": "firing", "labels": {}}]}, timeout=5)
    assert resp.status_code == 200 and resp.json()["results"][0]["skipped"] == "no entity label"


def test_slack_silence_lands_in_alertmanager(wired: tuple[AlertmanagerProcess, BackgroundServer, Settings]) -> None:
    am, server, _ = wired
    body = urllib.parse.urlencode({"text": f"silence {FAKE_HOST} 30m", "user_name": "carol"}).encode()
    ts = str(int(time.time()))
    resp = requests.post(
        f"{server.url}/v1/slack/commands",
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": slack_signature(SECRET, ts, body),
        },
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    silences = AlertmanagerClient(am.url).list_silences()
    assert len(silences) == 1
    assert silences[0]["matchers"] == [{"name": "entity", "value": FAKE_HOST, "isRegex": False, "isEqual": True}]
    assert silences[0]["createdBy"] == "slack:carol" and silences[0]["status"]["state"] == "active"
    assert silences[0]["id"] in resp.json()["text"]


def test_cli_explain_json_and_chat(prom_stack: PromStack, monkeypatch: pytest.MonkeyPatch, vigil_home: Path) -> None:
    from vigil.cli.main import app

    monkeypatch.setenv("VIGIL_PROMETHEUS_URL", prom_stack.prometheus_url)
    runner = CliRunner()
    result = runner.invoke(app, ["explain", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"entity", "signature", "explainer", "text", "evidence"} <= set(data)
    assert data["entity"] == FAKE_HOST and data["signature"] == "cpu_saturation"
    assert data["explainer"] == "deterministic"
    assert data["evidence"]["top_metrics"][0]["metric"] == "cpu_busy"
    assert data["evidence"]["top_metrics"][0]["current"] == pytest.approx(0.95, abs=0.05)

    result = runner.invoke(app, ["chat", "status"])
    assert result.exit_code == 0 and "1 of 2 entities anomalous" in result.stdout
    result = runner.invoke(app, ["chat", "explain nosuchhost"])
    assert result.exit_code == 1 and "no vigil_anomaly_score for entity 'nosuchhost'" in result.stdout


def test_only_our_own_links_are_copied_into_chat(
    wired: tuple[AlertmanagerProcess, BackgroundServer, Settings], chat_endpoints: tuple[HTTPPeer, HTTPPeer]
) -> None:
    _, server, settings = wired
    generic, _ = chat_endpoints
    url = f"{server.url}/v1/alertmanager"
    ours = f"{settings.effective_prometheus_url}/graph?g0.expr=vigil_anomaly_score"
    links = [ours, "https://vigil-login.example/reset", f"{settings.effective_prometheus_url}.evil.example/graph"]
    alerts = [
        {"status": "firing", "fingerprint": f"f{i}", "startsAt": "2026-11-26T10:00:00Z", "generatorURL": link,
         "labels": {"alertname": "VigilAnomaly", "entity": f"web-{i}:9100"},
         "annotations": {"top_metrics": "cpu_busy is 0.97 against a baseline of 0.1 (share 80%)"}}
        for i, link in enumerate(links)
    ]  # fmt: skip
    assert requests.post(url, json={"alerts": alerts}, timeout=30).json()["notified"] == 3
    bodies = {r.json()["title"].split(" on ")[1].split(":")[0]: r.json()["message"] for r in generic.wait_for(3, 10)}
    assert f"Graph: {ours}" in bodies["web-0"]
    assert "Graph:" not in bodies["web-1"] and "Graph:" not in bodies["web-2"]


def test_an_alert_read_from_symptoms_is_updated_once_its_dependency_shows_the_cause(
    prom_stack: PromStack, chat_endpoints: tuple[HTTPPeer, HTTPPeer]
) -> None:
    """The demo service alarms on its latency before any call to its dependencies has ended: chat gets
    the symptom at once, then an update naming the outage once the calls to the dead inventory service
    fail. A host's alert, whose cause is its own, gets no second look."""
    from vigil.chatops.commands import ChatOps
    from vigil.chatops.evidence import EvidenceCollector
    from vigil.chatops.explain import DeterministicExplainer
    from vigil.config import load_settings
    from vigil.prometheus import PromClient
    from vigil.server.chatops_bp import SECOND_LOOK_S
    from vigil.wiring import catalog_queries, service_dependencies

    generic, _ = chat_endpoints
    signal_query, candidates = catalog_queries()
    collector = EvidenceCollector(
        PromClient(prom_stack.prometheus_url),
        dependencies=service_dependencies(load_settings()),
        signal_query=signal_query,
        candidate_signals=candidates,
    )
    chat = ChatOps(anomalies=list, explainer=DeterministicExplainer(), collector=collector)
    app = Flask("vigil-test")
    register_error_handlers(app)
    settings = Settings(
        prometheus_url=prom_stack.prometheus_url, apprise_urls=[f"json://127.0.0.1:{generic.port}/hook"]
    )
    app.register_blueprint(create_chatops_blueprint(settings, chatops=chat))
    slow = Anomaly("demo", time.time(), 0.9, 0.8, True, (Contribution("latency_p99", 0.9, 0.05, 0.8),))
    deadline = time.monotonic() + 60
    while any(d.failures_per_s for d in collector.collect(slow).dependencies):  # another test's calls
        assert time.monotonic() < deadline, "the demo's dependency failures never cleared"
        time.sleep(1)
    service = {"status": "firing", "fingerprint": "s9", "startsAt": "2026-12-07T10:00:00Z",
               "labels": {"alertname": "VigilAnomaly", "entity": "demo"},
               "annotations": {"top_metric": "latency_p99", "incident": "5e5e5e"}}  # fmt: skip
    host = {"status": "firing", "fingerprint": "h9", "startsAt": "2026-12-07T10:00:00Z",
            "labels": {"alertname": "VigilAnomaly", "entity": FAKE_HOST},
            "annotations": {"top_metric": "cpu_busy", "incident": "7f7f7f"}}  # fmt: skip
    with BackgroundServer(app) as server:
        answer = requests.post(f"{server.url}/v1/alertmanager", json={"alerts": [service, host]}, timeout=30).json()
        posted = time.monotonic()
        first, for_host = answer["results"]
        assert first["signature"] == "latency_regression" and first["second_look"] is True, first
        assert for_host["signature"] == "cpu_saturation" and "second_look" not in for_host, for_host
        # Now its calls end: each call to the inventory service is refused (a 502 for the client).
        while time.monotonic() < posted + SECOND_LOOK_S:
            assert requests.get(f"{prom_stack.demo_url}/api/inventory", timeout=5).status_code == 502
            time.sleep(0.2)
        messages = [m.json() for m in generic.wait_for(3, timeout_s=30)]
    update = parse_message(messages[2]["title"], messages[2]["message"])
    assert (update["status"], update["entity"], update["signature"]) == ("update", "demo", "dependency_outage")
    assert "(was read as latency regression; incident 5e5e5e)" in messages[2]["title"]
    assert "inventory (network)" in messages[2]["message"] and "Incident: 5e5e5e" in messages[2]["message"]
