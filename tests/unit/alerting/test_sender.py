from __future__ import annotations

import json
import urllib.parse

import pytest

from tests.conftest import free_port
from tests.unit.alerting.httppeer import HTTPPeer
from vigil.alerting import AlertmanagerClient, AlertSender, matcher_string, rfc3339
from vigil.alerting.client import parse_rfc3339
from vigil.errors import BadRequest, UpstreamUnavailable
from vigil.events import Anomaly, Contribution

CONTRIB = (
    Contribution("node_cpu_busy_ratio", 0.97, 0.21, 0.62),
    Contribution("node_load1", 7.5, 0.8, 0.25),
)


def anomaly(entity: str = "db-1:9100", *, active: bool = True, score: float = 0.9, ts: float = 1_700_000_000.0):
    return Anomaly(entity, ts, score, 0.8, active, CONTRIB, {"iforest": 0.93}, "v7")


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_rfc3339_round_trip() -> None:
    assert rfc3339(1_700_000_000.5) == "2023-11-14T22:13:20.500Z"
    assert parse_rfc3339(rfc3339(1_700_000_000.5)) == 1_700_000_000.5


def test_matcher_string_quotes_like_go() -> None:
    assert matcher_string("entity", 'a"b\\c') == 'entity="a\\"b\\\\c"'


def test_alert_payload_has_stable_labels_and_annotations() -> None:
    clock = Clock()
    sender = AlertSender(
        AlertmanagerClient("http://127.0.0.1:9"),
        resend_interval_s=30,
        prometheus_url="http://prom:9090",
        clock=clock,
    )
    sender.observe(anomaly(score=0.97))
    alert = sender.build_alert(sender._tracked["db-1:9100"], now=clock())
    assert alert["labels"] == {
        "alertname": "VigilAnomaly",
        "entity": "db-1:9100",
        "severity": "critical",
        "detector": "ensemble",
    }
    ann = alert["annotations"]
    assert "node_cpu_busy_ratio=0.97 (baseline 0.21, 62%)" in ann["top_metrics"]
    assert json.loads(ann["contributions"])[0]["metric"] == "node_cpu_busy_ratio"
    assert ann["score"] == "0.9700"
    assert alert["startsAt"] == rfc3339(1_700_000_000.0)
    assert parse_rfc3339(alert["endsAt"]) == clock() + 120
    expr = urllib.parse.parse_qs(urllib.parse.urlsplit(ann["link"]).query)["g0.expr"][0]
    assert expr == 'vigil_anomaly_score{entity="db-1:9100"}'

    # A lower score later in the same episode must not change the severity label (a new alert).
    sender.observe(anomaly(score=0.81))
    alert = sender.build_alert(sender._tracked["db-1:9100"], now=clock())
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["score"] == "0.8100"


def test_injection_in_entity_cannot_break_the_graph_query() -> None:
    sender = AlertSender(AlertmanagerClient("http://127.0.0.1:9"), prometheus_url="http://prom:9090")
    evil = '"} or vector(1) #'
    sender.observe(anomaly(evil))
    alert = sender.build_alert(sender._tracked[evil], now=1.7e9)
    expr = urllib.parse.parse_qs(urllib.parse.urlsplit(alert["generatorURL"]).query)["g0.expr"][0]
    assert expr == 'vigil_anomaly_score{entity="\\"} or vector(1) #"}'
    assert alert["labels"]["entity"] == evil


def test_no_duplicates_repost_and_resolve_against_a_real_http_peer() -> None:
    clock = Clock()
    with HTTPPeer() as peer:
        sender = AlertSender(AlertmanagerClient(peer.url), resend_interval_s=30, alert_ttl_s=90, clock=clock)
        assert sender.process([anomaly()]) == 1
        for _ in range(20):  # the same firing state every scoring step
            clock.t += 1
            assert sender.process([anomaly(ts=clock.t)]) == 0
        clock.t += 10  # 30 s since the first post: due for its re-post
        assert sender.process([anomaly(ts=clock.t)]) == 1
        first, repost = (r.json()[0] for r in peer.wait_for(2))
        assert first["startsAt"] == repost["startsAt"]
        assert parse_rfc3339(repost["endsAt"]) == clock.t + 90

        clock.t += 1
        assert sender.process([anomaly(active=False, ts=clock.t)]) == 1
        resolved = peer.wait_for(3)[2].json()[0]
        assert parse_rfc3339(resolved["endsAt"]) == clock.t
        assert sender.firing_entities() == []
        assert sender.process([anomaly(active=False, ts=clock.t + 1)]) == 0  # nothing left to resolve
        assert len(peer.requests) == 3
        assert all(r.path == "/api/v2/alerts" and r.method == "POST" for r in peer.requests)


def test_queue_is_bounded_and_keeps_firing_over_resolved() -> None:
    down = AlertmanagerClient(f"http://127.0.0.1:{free_port()}", timeout_s=0.5)  # nothing listens there
    sender = AlertSender(down, resend_interval_s=5, max_pending=2, max_backoff_s=0.01)
    sender.process([anomaly("a"), anomaly("b")])
    sender.process([anomaly("a", active=False)])  # a's resolve is now undeliverable
    sender.process([anomaly("c")])  # full: a's resolve is evicted (Alertmanager expires it itself)
    assert sender.firing_entities() == ["b", "c"]
    sender.process([anomaly("d")])  # full of firing alerts: the new one is refused, and counted
    stats = sender.stats()
    assert sender.firing_entities() == ["b", "c"]
    assert stats.dropped == 2 and stats.sent == 0 and stats.failed_attempts >= 1
    assert "unreachable" in stats.last_error


def test_client_maps_http_errors() -> None:
    with HTTPPeer(status=503, body=b"overloaded") as peer:
        with pytest.raises(UpstreamUnavailable):
            AlertmanagerClient(peer.url).post_alerts([{"labels": {"a": "b"}}])
    with HTTPPeer(status=400, body=b"bad") as peer:
        with pytest.raises(BadRequest):
            AlertmanagerClient(peer.url).post_alerts([{"labels": {"a": "b"}}])
    with pytest.raises(BadRequest):
        AlertmanagerClient("http://127.0.0.1:9").expire_silence("../../alerts")


def test_resend_interval_must_be_below_ttl() -> None:
    with pytest.raises(ValueError):
        AlertSender(AlertmanagerClient("http://127.0.0.1:9"), resend_interval_s=60, alert_ttl_s=60)


def test_one_alert_that_cannot_be_built_never_blocks_the_others() -> None:
    clock = Clock()
    with HTTPPeer() as peer:
        sender = AlertSender(AlertmanagerClient(peer.url), resend_interval_s=30, clock=clock)
        sender.observe(anomaly("year-0", ts=-62_135_596_801.0))  # before what RFC 3339 can say
        assert sender.process([anomaly("db-1")]) == 1
        assert [a["labels"]["entity"] for a in peer.wait_for(1)[0].json()] == ["db-1"]
        assert sender.firing_entities() == ["db-1"]
        assert sender.stats().rejected == 1 and "year-0" in sender.stats().last_error


def test_the_queue_outlives_a_crash_during_an_alertmanager_outage(tmp_path) -> None:  # noqa: ANN001
    state = tmp_path / "state" / "alerts.json"
    clock = Clock()
    down = AlertmanagerClient(f"http://127.0.0.1:{free_port()}", timeout_s=0.5)
    crashed = AlertSender(down, resend_interval_s=30, alert_ttl_s=90, clock=clock, state_path=state)
    crashed.process([anomaly("db-1", ts=clock.t - 5), anomaly("db-2", ts=clock.t - 3)])
    crashed.process([anomaly("db-2", active=False, ts=clock.t)])
    assert crashed.stats().sent == 0  # nothing reached Alertmanager, and the process dies here (no stop())
    with HTTPPeer() as peer:
        clock.t += 20
        revived = AlertSender(
            AlertmanagerClient(peer.url), resend_interval_s=30, alert_ttl_s=90, clock=clock, state_path=state
        )
        assert revived.flush() == 2
        alerts = {a["labels"]["entity"]: a for a in peer.wait_for(1)[0].json()}
        assert alerts["db-1"]["startsAt"] == rfc3339(1_700_000_000.0 - 5)  # its original start
        assert parse_rfc3339(alerts["db-2"]["endsAt"]) == 1_700_000_000.0  # the resolve, as it happened
        assert revived.firing_entities() == ["db-1"]
        # No engine claims db-1 again (its entity came back cold and normal): it resolves after the TTL.
        clock.t += 90
        assert revived.flush() == 1
        assert parse_rfc3339(peer.wait_for(2)[1].json()[0]["endsAt"]) == clock.t
        assert revived.firing_entities() == []
    assert AlertSender(down, state_path=state).firing_entities() == []


def test_an_unreadable_queue_file_is_moved_aside(tmp_path) -> None:  # noqa: ANN001
    state = tmp_path / "alerts.json"
    state.write_text('{"alerts": {"db-1": {"labels": 3}}}')
    sender = AlertSender(AlertmanagerClient("http://127.0.0.1:9"), state_path=state)
    assert sender.firing_entities() == [] and not state.exists()
    assert (tmp_path / "alerts.json.corrupt").exists()
