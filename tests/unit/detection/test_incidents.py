"""Incidents from alarm transitions: hand-written timelines (seconds), each checked by hand."""

from __future__ import annotations

import pytest

from vigil.config import EntitySettings, Settings
from vigil.detection.incidents import IncidentTracker, ServiceTopology, Topology, incidents_of
from vigil.errors import ConfigError

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


def test_a_recordings_transitions_score_offline_as_serving_groups_them() -> None:
    transitions = [(100.0, HOST, True), (104.0, "demo", True), (130.0, HOST, False), (131.0, "demo", False)]
    (incident,) = incidents_of(transitions, LOCAL, join_s=15, resolve_s=60)
    assert incident.entities == {HOST: 100.0, "demo": 104.0} and incident.status == "resolved"
