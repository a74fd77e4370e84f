"""Incidents: the alarms of related entities that start together are one problem.

An operator wants one page per problem, not one per entity it touched: a CPU pinned on a host slows
the service running there, and both alarm. An alarm opens an incident; another entity's alarm joins
it when the topology relates the two entities (a service and the host it runs on, a service and its
dependency) and it starts within ``join_s`` of the incident's first alarm. Past that window a related
entity's alarm is a problem of its own (a CPU fault twenty seconds into a database outage), so a wide
window cannot merge unrelated faults that happen to overlap. An incident resolves once none of its
entities has alarmed for ``resolve_s``; an entity alarming again before then stays in it.

Only alarm transitions matter: an entity's alarm starting (``active`` after inactive) or ending.
Repeated events of an alarm already on (alert re-sends) change nothing but ``updated``. Serving also
ends the alarms of an incident nothing was heard of for ``stale_s`` of its own clock (its entities
gone, or serving restarted without its snapshot; :meth:`IncidentTracker.forget_stale`), so no
incident stays open for ever; every other time is the alarms' own.

An operator's feedback rides on the incident: acknowledged, or judged a false positive or a real
problem (``verdict``, a label for model selection). The tracker's state round-trips through
:meth:`IncidentTracker.state` and :meth:`IncidentTracker.restore`, so a restart loses none of it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.config import Settings
from vigil.errors import BadRequest, ConfigError, NotFound
from vigil.statefile import FormatCheck, check_json_format

STATE_VERSION = 1  # of state/incidents.json


@dataclass(frozen=True)
class ServiceTopology:
    """Where one watched service runs and what it calls."""

    host: str = ""  # the host's name as its entities carry it (``127.0.0.1`` for ``127.0.0.1:9100``)
    depends_on: tuple[str, ...] = ()  # entities (or dependency names) it calls


class Topology:
    """Which entities are related: a service and its host, a service and what it depends on.

    A host entity is named by its ``instance`` (``web-1:9100``); it runs a service whose ``host``
    is that instance or its host part (``web-1``).

    >>> topo = Topology({"demo": ServiceTopology(host="127.0.0.1", depends_on=("inventory",))})
    >>> topo.related("demo", "127.0.0.1:19100"), topo.related("127.0.0.1:19100", "10.0.0.2:9100")
    (True, False)
    >>> topo.related("demo", "inventory"), topo.related("demo", "demo")
    (True, True)
    """

    def __init__(self, services: Mapping[str, ServiceTopology] | None = None) -> None:
        self.services = dict(services or {})
        for name, svc in self.services.items():
            if name in svc.depends_on:
                raise ConfigError(f"topology: service {name!r} depends on itself")
            if len(set(svc.depends_on)) != len(svc.depends_on):
                raise ConfigError(f"topology: service {name!r} names a dependency twice")

    def related(self, a: str, b: str) -> bool:
        if a == b:
            return True
        return self._one_way(a, b) or self._one_way(b, a)

    def _one_way(self, service: str, other: str) -> bool:
        svc = self.services.get(service)
        if svc is None:
            return False
        if other in svc.depends_on:
            return True
        return bool(svc.host) and svc.host in (other, *_host_part(other))

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        """The services of ``entities:`` that name a host or dependencies."""
        return cls(
            {
                name: ServiceTopology(e.host, tuple(e.depends_on))
                for name, e in settings.entities.items()
                if e.host or e.depends_on
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            name: {"host": svc.host, "depends_on": list(svc.depends_on)} for name, svc in sorted(self.services.items())
        }


def _host_part(entity: str) -> tuple[str, ...]:
    """``web-1:9100`` -> ``("web-1",)``; a name without a port has no host part of its own."""
    host, sep, port = entity.rpartition(":")
    return (host.strip("[]"),) if sep and port.isdigit() else ()


@dataclass
class Incident:
    id: str
    started: float
    updated: float
    entities: dict[str, float] = field(default_factory=dict)  # entity -> when it first alarmed in this incident
    alarmed: set[str] = field(default_factory=set)  # entities whose alarm is on now
    quiet_since: float | None = None  # when the last alarm ended; None while one is on
    resolved: float | None = None
    heard: float = 0.0  # serving's clock at the last event of its alarms (for stale_s)
    acknowledged: float | None = None  # when an operator took it
    verdict: str = ""  # an operator's judgement, one of VERDICTS
    feedback_by: str = ""
    note: str = ""

    @property
    def status(self) -> str:
        return "resolved" if self.resolved is not None else "open"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "started": self.started,
            "updated": self.updated,
            "resolved": self.resolved,
            "entities": [{"entity": e, "since": t, "alarm": e in self.alarmed} for e, t in self.entities.items()],
            "acknowledged": self.acknowledged,
            "verdict": self.verdict,
            "feedback_by": self.feedback_by,
            "note": self.note,
            "quiet_since": self.quiet_since,
            "heard": self.heard,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Incident:
        """The inverse of :meth:`to_dict`; raises ``ValueError`` (or ``TypeError``, ``KeyError``) on
        anything else."""

        def finite(value: Any) -> float:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(f"a time that is not finite: {value!r}")
            return number

        def when(key: str) -> float | None:
            value = d.get(key)
            return None if value is None else finite(value)

        entities = {str(e["entity"]): finite(e["since"]) for e in d["entities"]}
        verdict = str(d.get("verdict") or "")
        if verdict and verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        return cls(
            id=str(d["id"]),
            started=finite(d["started"]),
            updated=finite(d["updated"]),
            entities=entities,
            alarmed={str(e["entity"]) for e in d["entities"] if e.get("alarm") is True},
            quiet_since=when("quiet_since"),
            resolved=when("resolved"),
            heard=when("heard") or 0.0,
            acknowledged=when("acknowledged"),
            verdict=verdict,
            feedback_by=str(d.get("feedback_by") or ""),
            note=str(d.get("note") or ""),
        )


# "false_positive": nothing was wrong (the model should learn the period as normal); "confirmed": a
# real problem (kept out of what a model learns as normal).
VERDICTS = ("false_positive", "confirmed")
FEEDBACK_TEXT_MAX = 500


@dataclass(frozen=True)
class IncidentEvent:
    """What changed: ``opened``, ``joined`` (an entity joined), ``resolved``."""

    kind: str
    incident: Incident
    entity: str = ""


class IncidentTracker:
    """Groups alarm transitions into incidents (module docstring). Not thread-safe: the caller
    serialises :meth:`observe` and :meth:`expire`.

    >>> tracker = IncidentTracker(Topology({"demo": ServiceTopology(host="h")}), join_s=10, resolve_s=30)
    >>> [e.kind for e in tracker.observe("h:9100", 100.0, True)], [e.kind for e in tracker.observe("demo", 104.0, True)]
    (['opened'], ['joined'])
    >>> [e.kind for e in tracker.observe("demo", 130.0, True)]  # an alert re-sent: nothing new
    []
    >>> tracker.observe("h:9100", 140.0, False), tracker.observe("demo", 141.0, False)
    ([], [])
    >>> [(e.kind, sorted(e.incident.entities)) for e in tracker.expire(171.0)]
    [('resolved', ['demo', 'h:9100'])]
    """

    def __init__(
        self,
        topology: Topology,
        *,
        join_s: float = 15.0,
        resolve_s: float = 20.0,
        max_entities: int = 50,
        stale_s: float = 900.0,
    ) -> None:
        if join_s < 0 or resolve_s < 0 or max_entities < 1 or stale_s <= 0:
            raise ConfigError(
                "incidents: join_s and resolve_s must not be negative, max_entities at least 1, stale_s positive"
            )
        self.topology = topology
        self.join_s = join_s
        self.resolve_s = resolve_s
        self.stale_s = stale_s
        self.max_entities = max_entities  # an incident stops growing here; later alarms open their own
        self.open: list[Incident] = []
        self.recent: list[Incident] = []  # resolved, newest last
        self.keep_resolved = 200

    def observe(self, entity: str, t: float, active: bool, heard: float | None = None) -> list[IncidentEvent]:
        """One alarm state of ``entity`` at ``t``, heard at ``heard`` by the caller's clock (``t`` when
        not given); returns what changed."""
        events = self.expire(t)
        heard = t if heard is None else heard
        mine = self.incident_of(entity)
        if not active:
            if mine is not None and entity in mine.alarmed:
                mine.alarmed.discard(entity)
                mine.updated, mine.heard = t, heard
                if not mine.alarmed:
                    mine.quiet_since = t
            return events
        if mine is not None:
            mine.updated, mine.heard = t, heard
            if entity not in mine.alarmed:
                mine.alarmed.add(entity)
                mine.quiet_since = None
            return events
        joined = next(
            (
                i
                for i in self.open
                if t - i.started <= self.join_s
                and len(i.entities) < self.max_entities
                and any(self.topology.related(entity, other) for other in i.entities)
            ),
            None,
        )
        if joined is not None:
            joined.entities[entity] = t
            joined.alarmed.add(entity)
            joined.updated, joined.heard, joined.quiet_since = t, heard, None
            return [*events, IncidentEvent("joined", joined, entity)]
        incident = Incident(_incident_id(entity, t), t, t, {entity: t}, {entity}, heard=heard)
        self.open.append(incident)
        return [*events, IncidentEvent("opened", incident, entity)]

    def incident_of(self, entity: str) -> Incident | None:
        """The open incident ``entity`` is part of."""
        return next((i for i in self.open if entity in i.entities), None)

    def forget_stale(self, heard_now: float) -> None:
        """End the alarms of incidents nothing was heard of for ``stale_s`` by ``heard_now`` (the
        clock ``observe``'s ``heard`` uses), as of their last event."""
        for incident in self.open:
            if incident.alarmed and heard_now - incident.heard >= self.stale_s:
                incident.alarmed.clear()
                incident.quiet_since = incident.updated

    def expire(self, now: float) -> list[IncidentEvent]:
        """Resolve the incidents quiet for ``resolve_s`` by ``now``."""
        done = [i for i in self.open if i.quiet_since is not None and now - i.quiet_since >= self.resolve_s]
        for incident in done:
            self.open.remove(incident)
            incident.resolved = now
            self.recent = [*self.recent, incident][-self.keep_resolved :]
        return [IncidentEvent("resolved", i) for i in done]

    def incidents(self) -> list[Incident]:
        """Open incidents, then the recently resolved ones, newest first."""
        return sorted(self.open, key=lambda i: -i.started) + self.recent[::-1]

    def feedback(self, incident_id: str, action: str, *, by: str, note: str = "", now: float) -> Incident:
        """An operator's ``ack``, or a verdict (one of :data:`VERDICTS`), on an open or recent incident."""
        incident = next((i for i in [*self.open, *self.recent] if i.id == incident_id), None)
        if incident is None:
            raise NotFound(f"no incident {incident_id!r} (open, or among the last {self.keep_resolved} resolved)")
        if action not in ("ack", *VERDICTS):
            raise BadRequest(f"unknown feedback {action!r}: send ack, {' or '.join(VERDICTS)}")
        if len(by) > FEEDBACK_TEXT_MAX or len(note) > FEEDBACK_TEXT_MAX:
            raise BadRequest(f"who and the note are at most {FEEDBACK_TEXT_MAX} characters each")
        if action == "ack":
            incident.acknowledged = incident.acknowledged or now
        else:
            incident.verdict = action
        if by:  # the note is the latest speaker's, never credited to someone else
            incident.feedback_by, incident.note = by, note
        elif note:
            incident.note = note
        return incident

    def state(self) -> dict[str, Any]:
        """Everything :meth:`restore` needs, as JSON-ready data."""
        return {
            "version": STATE_VERSION,
            "open": [i.to_dict() for i in self.open],
            "recent": [i.to_dict() for i in self.recent],
        }

    def restore(self, state: Mapping[str, Any]) -> int:
        """Take the incidents of a saved :meth:`state`; returns how many. Raises ``ValueError`` on a
        state this code did not write."""
        if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
            raise ValueError(f"not an incident state of version {STATE_VERSION}")
        try:
            opened = [Incident.from_dict(d) for d in state.get("open", [])]
            recent = [Incident.from_dict(d) for d in state.get("recent", [])]
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise ValueError(f"an incident cannot be read back: {exc}") from None
        for incident in recent:
            if incident.resolved is None:
                raise ValueError(f"incident {incident.id} is listed as resolved but has no resolved time")
        for incident in opened:
            if not incident.alarmed and incident.quiet_since is None:
                incident.quiet_since = incident.updated  # nothing on and no end: it ends as of its last event
        self.open, self.recent = opened, recent[-self.keep_resolved :]
        return len(opened) + len(recent)


def _incident_id(entity: str, t: float) -> str:
    return hashlib.sha256(f"{entity}@{t:.3f}".encode()).hexdigest()[:12]


def incidents_of(
    transitions: Iterable[tuple[float, str, bool]], topology: Topology, *, join_s: float, resolve_s: float
) -> list[Incident]:
    """The incidents a time-ordered series of ``(t, entity, alarm)`` transitions forms, every one
    resolved at the end: how a recording is scored offline, as serving groups them live."""
    tracker = IncidentTracker(topology, join_s=join_s, resolve_s=resolve_s)
    last = 0.0
    for t, entity, active in transitions:
        tracker.observe(entity, t, active)
        last = t
    tracker.expire(last + tracker.resolve_s + 1e9)  # whatever is still open ends with the recording
    return sorted(tracker.recent, key=lambda i: i.started)


def check_incident_state(path: Path) -> FormatCheck:
    """What this version does with the saved incidents at ``path`` (``vigil upgrade-check``)."""
    return check_json_format(
        "incidents", path, "version", STATE_VERSION,
        consequence="Open incidents are forgotten; alarms still on open new ones.",
    )  # fmt: skip
