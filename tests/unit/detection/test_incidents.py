"""Incidents from alarm transitions: hand-written timelines (seconds), each checked by hand."""

from __future__ import annotations

import json

import pytest

from vigil.config import EntitySettings, Settings
from vigil.detection.incidents import IncidentTracker, ServiceTopology, Topology, incidents_of
from vigil.errors import BadRequest, ConfigError, NotFound

HOST, OTHER_HOST = "127.0.0.1:19100", "10.0.0.2:9100"
LOCAL = Topology({"demo": ServiceTopology(host="127.0.0.1", depends_on=("inventory",))})


def _kinds(events) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(e.kind, e.entity) for e in events]


def test_a_host_and_the_service_on_it_alarming_together_are_one_incident() -> None:
    tracker = IncidentTracker(LOCAL, join_s=15, resolve_s=60)
    assert _kinds(tracker.observe(HOST, 100, True)) == [("opened", HOST)]
    assert _kinds(tracker.observe("demo", 106, True)) == [("joined", "demo")]
    # Another machine is not related: its alarm is its own problem, even at the same moment.
    assert _kinds(tracker.observe(OTHER_HOST, 107, True)) == [("opened", OTHER_HOST)]
    assert [sorted(i.entities) for i in tracker.incidents()] == [[OTHER_HOST], [HOST, "demo"]]


def test_a_related_alarm_past_the_join_window_is_a_problem_of_its_own() -> None:
    """A CPU fault twenty seconds into a database outage: both touch the same machine, neither caused
    the other; a wide window would merge them."""
    tracker = IncidentTracker(LOCAL, join_s=15, resolve_s=60)
    tracker.observe("demo", 100, True)
    assert _kinds(tracker.observe(HOST, 120, True)) == [("opened", HOST)]
    assert len(tracker.open) == 2


def test_an_incident_resolves_once_quiet_for_resolve_s_and_a_flap_before_that_stays_in_it() -> None:
    tracker = IncidentTracker(LOCAL, join_s=15, resolve_s=60)
    tracker.observe(HOST, 100, True)
    tracker.observe(HOST, 110, False)
    assert tracker.observe(HOST, 150, True) == []  # back within 60 s: the same incident
    tracker.observe(HOST, 160, False)
    assert tracker.expire(219) == []
    (resolved,) = tracker.expire(220)
    assert resolved.kind == "resolved" and resolved.incident.resolved == 220
    assert _kinds(tracker.observe(HOST, 230, True)) == [("opened", HOST)]  # a new problem
    assert [i.status for i in tracker.incidents()] == ["open", "resolved"]


def test_alert_re_sends_change_nothing_and_an_incident_stops_growing_at_its_bound() -> None:
    star = Topology({f"svc-{i}": ServiceTopology(host="h") for i in range(5)})
    tracker = IncidentTracker(star, join_s=15, resolve_s=60, max_entities=3)
    tracker.observe("h:9100", 100, True)
    assert tracker.observe("h:9100", 101, True) == []
    joined = [tracker.observe(f"svc-{i}", 102 + i, True) for i in range(4)]
    # Full at three; the next service opens its own (services on one host relate through the host).
    assert [events[0].kind for events in joined] == ["joined", "joined", "opened", "opened"]
    assert [len(i.entities) for i in sorted(tracker.open, key=lambda i: i.started)] == [3, 1, 1]


def test_the_local_stacks_topology_comes_from_the_settings_and_bad_ones_are_refused() -> None:
    topo = Topology.from_settings(Settings())
    assert topo.related("demo", HOST) and topo.related("demo", "database") and not topo.related(HOST, OTHER_HOST)
    assert topo.to_dict() == {"demo": {"host": "127.0.0.1", "depends_on": ["inventory", "database"]}}
    with pytest.raises(ConfigError, match="depends on itself"):
        Topology({"a": ServiceTopology(depends_on=("a",))})
    with pytest.raises(ConfigError, match="twice"):
        Topology({"a": ServiceTopology(depends_on=("b", "b"))})
    with pytest.raises(ValueError, match="dependency_duration_metric"):
        EntitySettings(depends_on={"db": "local"})
    # Services calling each other is a real topology, not an error: relatedness is one hop, so a
    # cycle is never followed, and the incident it joins is bounded like any other.
    ring = Topology({"a": ServiceTopology(depends_on=("b",)), "b": ServiceTopology(depends_on=("c",)),
                     "c": ServiceTopology(depends_on=("a",))})  # fmt: skip
    assert ring.related("a", "b") and ring.related("c", "a") and ring.related("b", "c")
    tracker = IncidentTracker(ring, join_s=15, resolve_s=60, max_entities=2)
    assert [tracker.observe(e, 100 + i, True)[0].kind for i, e in enumerate("abc")] == ["opened", "joined", "opened"]


def test_a_recordings_transitions_score_offline_as_serving_groups_them() -> None:
    transitions = [(100.0, HOST, True), (104.0, "demo", True), (130.0, HOST, False), (131.0, "demo", False)]
    (incident,) = incidents_of(transitions, LOCAL, join_s=15, resolve_s=60)
    assert incident.entities == {HOST: 100.0, "demo": 104.0} and incident.status == "resolved"


def test_an_alarm_never_heard_of_again_ends_after_stale_s_of_serving_clock() -> None:
    """Serving restarted without its snapshot, or the entity went away: no end of its alarm will ever
    come. Old data (a replayed backlog) is not stale: staleness is serving's clock, not the samples'."""
    tracker = IncidentTracker(LOCAL, join_s=15, resolve_s=20, stale_s=300)
    tracker.observe(HOST, 100, True, heard=5000)
    tracker.forget_stale(5299)
    assert not tracker.expire(9999) and tracker.open[0].alarmed == {HOST}
    tracker.forget_stale(5300)  # its alarm counts as ended at its last event (100)
    (resolved,) = tracker.expire(120)
    assert resolved.kind == "resolved" and resolved.incident.quiet_since == 100 and resolved.incident.resolved == 120


def test_operator_feedback_is_kept_and_bad_feedback_refused() -> None:
    tracker = IncidentTracker(LOCAL, join_s=15, resolve_s=20)
    (opened,) = tracker.observe(HOST, 100, True)
    incident_id = opened.incident.id
    tracker.feedback(incident_id, "ack", by="ana", now=105)
    tracker.feedback(incident_id, "false_positive", by="", note="a planned load test", now=110)
    got = tracker.incidents()[0].to_dict()
    assert (got["acknowledged"], got["verdict"], got["feedback_by"], got["note"]) == (
        105, "false_positive", "ana", "a planned load test")  # fmt: skip
    with pytest.raises(NotFound, match="no incident 'nope'"):
        tracker.feedback("nope", "ack", by="ana", now=111)
    with pytest.raises(BadRequest, match="unknown feedback 'delete'"):
        tracker.feedback(incident_id, "delete", by="ana", now=111)
    with pytest.raises(BadRequest, match="at most 500"):
        tracker.feedback(incident_id, "ack", by="x" * 501, now=111)


def test_incidents_and_feedback_survive_a_round_trip_and_garbage_is_refused() -> None:
    tracker = IncidentTracker(LOCAL, join_s=15, resolve_s=20)
    tracker.observe(HOST, 100, True)
    tracker.observe("demo", 104, True)
    tracker.observe(HOST, 110, False)
    tracker.observe(HOST, 120, True)
    tracker.observe(OTHER_HOST, 130, True)
    tracker.observe(OTHER_HOST, 131, False)
    tracker.expire(200)  # OTHER_HOST's incident resolves, the first stays open (its alarms are on)
    tracker.feedback(tracker.recent[0].id, "confirmed", by="ana", now=201)
    state = json.loads(json.dumps(tracker.state()))
    again = IncidentTracker(LOCAL, join_s=15, resolve_s=20)
    assert again.restore(state) == 2
    assert [i.to_dict() for i in again.incidents()] == [i.to_dict() for i in tracker.incidents()]
    # What happens next is what would have happened without the restart.
    assert _kinds(again.observe("demo", 205, False)) == _kinds(tracker.observe("demo", 205, False)) == []
    # An open incident saved with nothing on and no end (written by hand) ends as of its last event.
    odd = dict(state["open"][0], entities=[dict(e, alarm=False) for e in state["open"][0]["entities"]])
    hand = IncidentTracker(LOCAL, join_s=15, resolve_s=20)
    hand.restore({"version": 1, "open": [dict(odd, quiet_since=None)]})
    assert [e.kind for e in hand.expire(odd["updated"] + 20)] == ["resolved"]
    for bad in ({}, {"version": 2}, {"version": 1, "open": [{"id": "x"}]},
                {"version": 1, "recent": [dict(state["recent"][0], resolved=None)]},
                {"version": 1, "open": [dict(state["open"][0], verdict="maybe")]},
                {"version": 1, "open": [dict(state["open"][0], started=float("nan"))]}):  # fmt: skip
        with pytest.raises(ValueError):
            IncidentTracker(LOCAL).restore(bad)
