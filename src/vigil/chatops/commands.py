"""The chat commands (``status``, ``explain [entity]``, ``silence <entity> <duration>``, an operator's
``ack`` / ``false-positive`` / ``confirm`` of an incident), one service for every surface: Slack slash
commands, the Alertmanager webhook and the CLI all call :class:`ChatOps`."""

from __future__ import annotations

import math
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vigil.chatops.evidence import Evidence, EvidenceCollector, evidence_from_anomaly
from vigil.chatops.explain import Explainer, Explanation, dependency_verdict
from vigil.durations import parse_duration
from vigil.errors import BadRequest, NotFound, UpstreamUnavailable
from vigil.events import Anomaly

HELP = (
    "Commands:\n"
    "  status                      entities Vigil currently flags, highest score first\n"
    "  explain [ENTITY]            why ENTITY (default: the most anomalous one) is anomalous\n"
    "  silence ENTITY DURATION     silence ENTITY's alerts in Alertmanager, e.g. silence db-1:9100 30m\n"
    "  ack INCIDENT [NOTE]         take an incident (its id is in the alert message)\n"
    "  false-positive INCIDENT [NOTE]   nothing was wrong: the models learn the period as normal\n"
    "  confirm INCIDENT [NOTE]     a real problem"
)
# Longer than the demo's database lock timeout (2 s) plus a scrape: a call stalled when the alarm rose
# has ended, slow or failed, and is counted.
DEPENDENCY_SETTLE_S = 3.0
# What a watched service's alert shows of itself when its cause lies elsewhere or is not measured yet.
SERVICE_SYMPTOMS = frozenset({"latency_regression", "error_spike", "unknown"})
# chat verb -> the feedback action of vigil.detection.incidents
FEEDBACK_VERBS = {"ack": "ack", "false-positive": "false_positive", "confirm": "confirmed"}

# (entity, duration_s, created_by, comment) -> silence id; wired to Alertmanager by the entry point.
Silencer = Callable[[str, float, str, str], str]
# entity or None (the most anomalous) -> its anomaly, from outside the process (Prometheus).
Lookup = Callable[[str | None], Anomaly]
# (incident id, action, by, note) -> the incident as the detection service lists it.
Feedback = Callable[[str, str, str, str], dict[str, Any]]


MAX_SILENCE_S = 7 * 86400  # a forgotten week-long silence is already bad enough


@dataclass(frozen=True)
class Command:
    name: str  # "status", "explain", "silence", "help" or a FEEDBACK_VERBS action
    entity: str | None = None  # for feedback: the incident id
    duration_s: float | None = None
    duration: str = ""
    note: str = ""


def parse_command(text: str) -> Command:
    """Parse a command line; entities with spaces can be quoted.

    >>> parse_command("silence 'db 1' 30m")
    Command(name='silence', entity='db 1', duration_s=1800.0, duration='30m', note='')
    """
    if len(text) > 1000:
        raise BadRequest("command too long")
    try:
        tokens = shlex.split(text)
    except ValueError:
        tokens = text.split()
    if not tokens or tokens[0].lower() in ("help", "-h", "--help", "?"):
        return Command("help")
    verb, args = tokens[0].lower(), tokens[1:]
    if verb == "status" and not args:
        return Command("status")
    if verb == "explain" and len(args) <= 1:
        return Command("explain", args[0] if args else None)
    if verb == "silence" and len(args) == 2:
        return Command("silence", args[0], parse_duration(args[1], maximum_s=MAX_SILENCE_S), args[1])
    if verb in FEEDBACK_VERBS and args:
        return Command(FEEDBACK_VERBS[verb], args[0], note=" ".join(args[1:]))
    raise BadRequest(
        f"cannot understand {text[:80]!r}",
        hint="try: status | explain [ENTITY] | silence ENTITY 30m | ack INCIDENT | false-positive INCIDENT",
    )


@dataclass
class Reply:
    text: str
    ok: bool = True
    data: dict[str, Any] = field(default_factory=dict)


class ChatOps:
    """Answers chat commands from live anomalies, Prometheus evidence and an explainer.

    Parameters
    ----------
    anomalies : callable
        Returns the anomalies the detection service holds now (one per entity, active or not).
    explainer : Explainer
        Deterministic or LLM-backed.
    collector : EvidenceCollector, optional
        Without it, evidence is the anomaly's own attribution only.
    silencer : callable, optional
        Creates an Alertmanager silence; without it ``silence`` answers that it is not available.
    lookup : callable, optional
        Finds an entity's anomaly when ``anomalies`` does not hold it (e.g. from Prometheus in the CLI).
    feedback : callable, optional
        Records an operator's acknowledgement or verdict on an incident (the detection service's).
    """

    def __init__(
        self,
        *,
        anomalies: Callable[[], Sequence[Anomaly]],
        explainer: Explainer,
        collector: EvidenceCollector | None = None,
        silencer: Silencer | None = None,
        lookup: Lookup | None = None,
        feedback: Feedback | None = None,
    ) -> None:
        self.anomalies = anomalies
        self.explainer = explainer
        self.collector = collector
        self.silencer = silencer
        self.lookup = lookup
        self.feedback = feedback

    def find(self, entity: str | None) -> Anomaly:
        current = list(self.anomalies())
        if entity is None:
            if current:
                return max(current, key=lambda a: (a.active, a.score))
        else:
            for anomaly in current:
                if anomaly.entity == entity:
                    return anomaly
        if self.lookup is not None:
            return self.lookup(entity)
        if entity is None:
            raise NotFound("no entity is being scored right now")
        raise NotFound(f"unknown entity {entity[:100]!r}", hint="`status` lists the entities Vigil scores")

    def evidence(self, anomaly: Anomaly) -> Evidence:
        if self.collector is None:
            return evidence_from_anomaly(anomaly)
        try:
            return self.collector.collect(anomaly)
        except UpstreamUnavailable as exc:
            return evidence_from_anomaly(anomaly, problem=str(exc))

    def explain_anomaly(self, anomaly: Anomaly) -> Explanation:
        return self.explainer.explain(self.evidence(anomaly))

    def explain_alert(self, anomaly: Anomaly, settle_s: float = DEPENDENCY_SETTLE_S) -> Explanation:
        """:meth:`explain_anomaly` for an alert just raised, which may come before its cause is measured.

        A service's alarm can rise on its requests piling up before any call to a stalled dependency
        has ended (a locked database makes each call wait its 2 s timeout, then fail), so neither slow
        nor failed calls are counted yet and only the symptom, its latency, shows. Such an explanation
        of a service with dependencies is gathered once more after ``settle_s``, when the calls have
        ended. Chat commands do not wait (Slack wants an answer within 3 s).
        """
        evidence = self.evidence(anomaly)
        explanation = self.explainer.explain(evidence)
        if settle_s > 0 and _symptom_only(explanation) and dependency_verdict(evidence) is None:
            time.sleep(settle_s)
            explanation = self.explainer.explain(self.evidence(anomaly))
        return explanation

    @staticmethod
    def provisional(explanation: Explanation) -> bool:
        """Whether later evidence may name another cause: an explanation resting on the service's own
        symptoms, or on its local calls being slow, while it has dependencies.

        Slow local calls are a latency regression until they fail: a database whose lock is held
        slows the calls that still get through before the first one times out and fails (a quick
        validation run saw its first ``database is locked`` 5 s into the outage, after its alert had
        reached chat). The webhook takes a :meth:`second_look` at such an alert.
        """
        if not _symptom_only(explanation):
            return False
        verdict = dependency_verdict(explanation.evidence)
        return verdict is None or verdict[0] == "latency_regression"

    def second_look(self, anomaly: Anomaly, first: Explanation) -> Explanation | None:
        """The alert explained again; the new explanation if it names another cause than ``first``
        that rests on more than the service's symptoms (a dependency's calls, a resource). Another
        symptom (an error spike where latency was named) or ``unknown`` is not news: the first
        reading stands until evidence names a cause."""
        explanation = self.explain_anomaly(anomaly)
        if explanation.signature == first.signature or _symptom_only(explanation):
            return None
        return explanation

    def explain(self, entity: str | None = None) -> Explanation:
        return self.explain_anomaly(self.find(entity))

    def status(self) -> Reply:
        current = sorted(self.anomalies(), key=lambda a: a.score, reverse=True)
        active = [a for a in current if a.active]
        if not current:
            return Reply("Vigil is not scoring any entity right now.", data={"anomalies": []})
        lines = [f"{len(active)} of {len(current)} entities anomalous."]
        for a in current[:15]:
            top = a.contributions[0].metric if a.contributions else "-"
            mark = "ANOMALY" if a.active else "ok"
            threshold = f"{a.threshold:.2f}" if math.isfinite(a.threshold) else "n/a"
            lines.append(f"  {mark:7} {a.entity}  score {a.score:.2f} (threshold {threshold})  top: {top}")
        data = {
            "anomalies": [
                {"entity": a.entity, "score": a.score, "active": a.active, "top_metric": a.contributions[0].metric}
                if a.contributions
                else {"entity": a.entity, "score": a.score, "active": a.active, "top_metric": None}
                for a in current
            ]
        }
        return Reply("\n".join(lines), data=data)

    def silence(self, entity: str, duration_s: float, *, created_by: str, duration: str = "") -> Reply:
        if self.silencer is None:
            return Reply("Silencing is not available: no Alertmanager configured.", ok=False)
        comment = f"silenced from chat by {created_by} for {duration or f'{duration_s:g}s'}"
        silence_id = self.silencer(entity, duration_s, created_by, comment)
        return Reply(
            f"Silenced alerts for {entity} for {duration or f'{duration_s:g}s'} (silence {silence_id}).",
            data={"silence_id": silence_id, "entity": entity, "duration_s": duration_s},
        )

    def incident_feedback(self, incident_id: str, action: str, *, by: str, note: str = "") -> Reply:
        if self.feedback is None:
            return Reply("Incident feedback is not available here: it goes to the Vigil service.", ok=False)
        incident = self.feedback(incident_id, action, by, note)
        said = {"ack": "acknowledged", "false_positive": "marked a false positive", "confirmed": "confirmed"}[action]
        entities = ", ".join(e["entity"] for e in incident.get("entities", []))
        return Reply(f"Incident {incident['id']} ({entities}) {said} by {by}.", data={"incident": incident})

    def handle(self, text: str, *, user: str = "cli") -> Reply:
        """Run one command line; errors become a readable reply, not an exception."""
        try:
            command = parse_command(text)
            if command.name == "help":
                return Reply(HELP)
            if command.name == "status":
                return self.status()
            if command.name == "explain":
                explanation = self.explain(command.entity)
                return Reply(explanation.text, data=explanation.to_dict())
            if command.name in FEEDBACK_VERBS.values() and command.entity is not None:
                return self.incident_feedback(command.entity, command.name, by=user, note=command.note)
            if command.entity is None or command.duration_s is None:  # parse_command never builds this
                raise BadRequest("silence needs an entity and a duration")
            return self.silence(command.entity, command.duration_s, created_by=user, duration=command.duration)
        except (BadRequest, NotFound, UpstreamUnavailable) as exc:
            return Reply(f"Sorry: {exc}", ok=False)


def _symptom_only(explanation: Explanation) -> bool:
    return bool(explanation.evidence.dependencies) and explanation.signature in SERVICE_SYMPTOMS
