"""ChatOps over HTTP: the Alertmanager webhook receiver and Slack slash commands.

``POST /v1/alertmanager``
    Alertmanager's webhook (payload version 4). Each firing alert is explained (evidence ->
    explainer) and posted to chat through Apprise; resolved alerts get a one-line notice. Answers
    503 when no message could be delivered, so Alertmanager retries later. With an LLM explainer it
    answers 202 at once and posts from a background worker (a model is slower than Alertmanager waits).
``POST /v1/slack/commands``
    ``/vigil status | explain [ENTITY] | silence ENTITY 30m``. Requests must carry a valid Slack v0
    signature no older than 5 minutes and are accepted once (replays get 401).

Two ways to mount it: the module-level ``bp`` builds its dependencies from the app's
``extensions["vigil"]`` context on first use, and :func:`create_chatops_blueprint` takes them
explicitly (tests, or an app that wants its own wiring). Register one or the other, not both.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Blueprint, Response, current_app, jsonify, request

from vigil.alerting.client import parse_rfc3339
from vigil.chatops.chatlog import ChatLog
from vigil.chatops.commands import ChatOps, Feedback, Reply, parse_command
from vigil.chatops.explain import Explanation
from vigil.chatops.llm import LLMExplainer
from vigil.chatops.notify import AppriseNotifier
from vigil.chatops.slack import SlackVerifier
from vigil.config import Settings
from vigil.errors import BadRequest, NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType, VigilError
from vigil.events import Anomaly, Contribution
from vigil.server.auth import credentials_match, require_read_token
from vigil.tokens import resolve_webhook_token
from vigil.wiring import build_chatops

log = logging.getLogger(__name__)

MAX_ALERTS_PER_WEBHOOK = 200
MAX_WEBHOOK_BYTES = 2 * 1024 * 1024
MAX_SLACK_BYTES = 16 * 1024
SLACK_URL_PREFIXES = ("https://hooks.slack.com/",)
# A provisional explanation is looked at again this long after it reached chat: a stalled dependency's
# calls have timed out and failed by then (the demo's database waits 2 s), and Prometheus has scraped
# the failures at least twice.
SECOND_LOOK_S = 10.0


class AlertBudget:
    """At most ``per_minute`` webhook alerts handled a minute, as a token bucket: a minute's worth
    at once, then the rate. What is over it is answered 503 with ``Retry-After``, which Alertmanager
    retries (it does not retry a 429), so a flood is slowed down, not lost.

    >>> b = AlertBudget(60, clock=lambda: 0.0)
    >>> b.take(50), b.take(10), b.take(5)
    (0.0, 0.0, 5.0)
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._tokens = float(per_minute)
        self._at = clock()
        self._lock = threading.Lock()

    def take(self, n: int) -> float:
        """Take ``n`` alerts' worth; returns 0, or the seconds until they would be there (nothing taken)."""
        rate = self.per_minute / 60.0
        n = min(n, self.per_minute)
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.per_minute), self._tokens + (now - self._at) * rate)
            self._at = now
            if self._tokens >= n:
                self._tokens -= n
                return 0.0
            return (n - self._tokens) / rate


class _Worker:
    """One background thread with a bounded queue, for work slower than its HTTP caller will wait."""

    def __init__(self, max_jobs: int = 100) -> None:
        self._jobs: queue.Queue[Callable[[], None]] = queue.Queue(maxsize=max_jobs)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None], delay_s: float = 0.0) -> bool:
        """Queue ``job`` to run no sooner than ``delay_s`` from now. Jobs run in the order they came,
        so one worker's jobs should share a delay (a later due time would hold up those behind it)."""
        if delay_s > 0:
            job = _when_due(time.monotonic() + delay_s, job)

        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vigil-chatops", daemon=True)
                self._thread.start()
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            return False
        return True

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except Exception:  # one failed job must not stop the worker
                log.exception("background chatops job failed")


def _when_due(due: float, job: Callable[[], None]) -> Callable[[], None]:
    """``job``, run no sooner than ``due`` (``time.monotonic()``)."""

    def run() -> None:
        time.sleep(max(0.0, due - time.monotonic()))
        job()

    return run


# Alerts of deploy/prometheus/rules/vigil_anomaly.yml that restate Vigil's own VigilAnomaly.
RULE_COPIES = frozenset({"VigilAnomalyDetected"})


class PostedAlerts:
    """Which alert notifications went out already, so each firing and each resolve is posted once.

    Alertmanager sends a group's full alert list whenever the group changes (every ``group_interval``)
    and again every ``repeat_interval``; without this, every alert of a group would be posted to chat
    again each time another alert joins it. The key is (fingerprint, startsAt, status): an alert that
    resolves and fires again is news. A key is forgotten after ``repost_after_s``, so a long incident
    gets a reminder; only delivered messages are remembered, so a failed post is retried.

    Serving tags each alert with its incident (annotation ``incident``): the first alert of an
    incident to reach chat leads it (``[FIRING]``). Another entity's alert of that incident is an
    ``[UPDATE]`` of it, its resolve not posted; the lead's alarm firing again while the incident is
    open is not news. Once the lead's resolve is posted the incident has no lead: whatever of it fires
    next is posted as ``[FIRING]``, so chat's last word is never "normal" while an alarm is on.
    """

    def __init__(self, repost_after_s: float = 4 * 3600.0, max_keys: int = 10_000) -> None:
        self.repost_after_s = repost_after_s
        self.max_keys = max_keys
        self._posted: dict[tuple[str, str, str], float] = {}
        self._leads: dict[str, tuple[str, str, str]] = {}  # incident id -> the key of the alert posted for it
        self._lock = threading.Lock()

    @staticmethod
    def key(alert: dict[str, Any]) -> tuple[str, str, str]:
        ident = str(alert.get("fingerprint") or json.dumps(alert.get("labels") or {}, sort_keys=True))
        return ident, str(alert.get("startsAt", "")), str(alert.get("status", "firing"))

    def is_new(self, key: tuple[str, str, str], now: float) -> bool:
        with self._lock:
            at = self._posted.get(key)
            return at is None or now - at >= self.repost_after_s

    def remember(self, key: tuple[str, str, str], now: float) -> None:
        with self._lock:
            self._posted.pop(key, None)
            self._posted[key] = now
            while len(self._posted) > self.max_keys:
                self._posted.pop(next(iter(self._posted)))

    def claim(self, incident: str, key: tuple[str, str, str]) -> str:
        """What an alert is to its incident's messages: ``lead`` (the first firing one, or the lead
        itself), ``again`` (the lead entity's alarm firing anew) or ``joined`` (another entity's).

        The first firing alert becomes the lead here, before its explanation is gathered: a host's
        and its service's alerts arrive in webhook calls of their own, handled at the same time.
        """
        with self._lock:
            lead = self._leads.get(incident) if incident else None
            if lead is None:
                if incident and key[2] == "firing":
                    self._leads[incident] = key
                    while len(self._leads) > self.max_keys:
                        self._leads.pop(next(iter(self._leads)))
                return "lead"
        if lead[:2] == key[:2]:
            return "lead"
        return "again" if lead[0] == key[0] else "joined"

    def release(self, incident: str) -> None:
        """The lead's resolve went out: the incident's next firing alert leads it anew."""
        with self._lock:
            self._leads.pop(incident, None)


@dataclass
class ChatOpsState:
    chatops: ChatOps
    notifier: AppriseNotifier
    verifier: SlackVerifier
    webhook_token: str = ""  # non-empty: the webhook needs "Authorization: Bearer <token>"
    response_url_prefixes: tuple[str, ...] = SLACK_URL_PREFIXES
    # With an LLM, explanations take longer than Alertmanager waits: accept the webhook, post later.
    deferred: bool = False
    # Vigil posts its own VigilAnomaly alerts: the Prometheus rule's copies of them are not news.
    own_alerts: bool = False
    worker: _Worker = field(default_factory=_Worker)
    second_looks: _Worker = field(default_factory=_Worker)
    posted: PostedAlerts = field(default_factory=PostedAlerts)
    # Links copied from an alert into chat must point at our own Prometheus, Alertmanager or console:
    # anything else in a message under Vigil's name is a phishing link.
    link_prefixes: tuple[str, ...] = ()
    budget: AlertBudget = field(default_factory=lambda: AlertBudget(600))
    chatlog: ChatLog = field(default_factory=ChatLog)  # what was posted, by incident (the console shows it)
    # Counts each message by outcome (delivered, failed, no_chat): the chat-delivery SLO's input.
    count: Callable[[str], None] = field(default=lambda outcome: None)

    def sent(self, key: str, title: str, body: str, delivered: bool | None, explanation: Explanation | None) -> None:
        """A message that went to chat (or would have, with no chat configured): counted and recorded
        under its incident (or entity)."""
        self.count({True: "delivered", False: "failed", None: "no_chat"}[delivered])
        self.chatlog.record(
            key, at=time.time(), title=title, body=body, delivered=delivered,
            explanation=None if explanation is None else explanation.to_dict(),
        )  # fmt: skip

    @classmethod
    def wire(
        cls,
        settings: Settings,
        chat: ChatOps,
        *,
        webhook_token: str,
        own_alerts: bool,
        notifier: AppriseNotifier | None = None,
        verifier: SlackVerifier | None = None,
        response_url_prefixes: Sequence[str] = SLACK_URL_PREFIXES,
        count: Callable[[str], None] | None = None,
        chatlog: ChatLog | None = None,
    ) -> ChatOpsState:
        return cls(
            chatops=chat,
            notifier=notifier or AppriseNotifier(settings.apprise_urls),
            verifier=verifier
            or SlackVerifier(settings.slack_signing_secret, max_age_s=settings.chatops.slack_max_age_s),
            webhook_token=webhook_token,
            response_url_prefixes=tuple(response_url_prefixes),
            deferred=isinstance(chat.explainer, LLMExplainer),
            own_alerts=own_alerts,
            link_prefixes=link_prefixes(settings),
            budget=AlertBudget(settings.chatops.webhook_alerts_per_minute),
            chatlog=chatlog or ChatLog(),
            count=count or (lambda outcome: None),
        )


def link_prefixes(settings: Settings) -> tuple[str, ...]:
    urls = (
        settings.chatops.public_prometheus_url,
        settings.effective_prometheus_url,
        settings.effective_alertmanager_url,
        settings.alerting.ui_url,
    )
    return tuple(sorted({u.rstrip("/") + "/" for u in urls if u}))


def create_chatops_blueprint(
    settings: Settings,
    *,
    anomalies: Callable[[], Sequence[Anomaly]] | None = None,
    chatops: ChatOps | None = None,
    notifier: AppriseNotifier | None = None,
    verifier: SlackVerifier | None = None,
    webhook_token: str = "",
    response_url_prefixes: Sequence[str] = SLACK_URL_PREFIXES,
    own_alerts: bool = False,
    name: str = "chatops",
) -> Blueprint:
    """A blueprint with explicit dependencies.

    Parameters
    ----------
    settings : Settings
        URLs (Prometheus, Alertmanager, LLM), ``apprise_urls``, ``slack_signing_secret``.
    anomalies : callable
        Returns the detection service's current anomalies (one per entity).
    chatops, notifier, verifier : optional
        Replace the standard wiring (see :func:`build_chatops`).
    webhook_token : str
        When set, ``POST /v1/alertmanager`` requires it as a bearer token.
    response_url_prefixes : sequence of str
        Where slow answers may be posted (Slack's ``response_url``); anything else is never contacted.
    own_alerts : bool
        This Vigil sends its own ``VigilAnomaly`` alerts, so the Prometheus rule's copies
        (``VigilAnomalyDetected``) are not posted to chat.
    """
    state = ChatOpsState.wire(
        settings,
        chatops or build_chatops(settings, anomalies=anomalies),
        webhook_token=webhook_token,
        own_alerts=own_alerts,
        notifier=notifier,
        verifier=verifier,
        response_url_prefixes=response_url_prefixes,
    )
    blueprint = Blueprint(name, __name__)
    _add_routes(blueprint, lambda: state)
    return blueprint


# ---- the module-level blueprint, wired from the serving app's context ------------------------------

bp = Blueprint("chatops", __name__)
_state_lock = threading.Lock()


def _engine_anomalies(service: Any) -> Callable[[], list[Anomaly]]:
    def current() -> list[Anomaly]:
        engine = service.engine
        if hasattr(engine, "anomalies"):
            return list(engine.anomalies())
        loaded = engine.loaded
        threshold = float(loaded.model.threshold_) if loaded is not None else math.nan
        version = loaded.version if loaded is not None else ""
        return [
            Anomaly(
                entity=v.entity,
                timestamp=v.timestamp,
                score=v.score,
                threshold=threshold,
                active=v.alarm,
                contributions=(Contribution(v.top_metric, math.nan, math.nan, v.top_share),) if v.top_metric else (),
                detector_scores=dict(v.detector_scores),
                model_version=version,
            )
            for v in engine.views()
        ]

    return current


def _feedback(service: Any) -> Feedback:
    def record(incident_id: str, action: str, by: str, note: str) -> dict[str, Any]:
        return service.incident_feedback(incident_id, action, by=by, note=note)  # type: ignore[no-any-return]

    return record


def _app_state() -> ChatOpsState:
    with _state_lock:
        state = current_app.extensions.get("vigil.chatops")
        if state is None:
            ctx = current_app.extensions["vigil"]
            settings: Settings = ctx.settings
            state = ChatOpsState.wire(
                settings,
                build_chatops(settings, anomalies=_engine_anomalies(ctx.service), feedback=_feedback(ctx.service)),
                webhook_token=resolve_webhook_token(settings),
                own_alerts=getattr(ctx.service, "dispatcher", None) is not None,
                count=functools.partial(ctx.service.stats.counters.inc, "chat_messages"),
                chatlog=ChatLog(settings.home / "state" / "chatlog.json"),
            )
            current_app.extensions["vigil.chatops"] = state
        return state


# ---- routes ----------------------------------------------------------------------------------------


def _add_routes(blueprint: Blueprint, get_state: Callable[[], ChatOpsState]) -> None:
    @blueprint.post("/v1/alertmanager")
    def alertmanager_webhook() -> tuple[Response, int]:
        state = get_state()
        if state.webhook_token and not credentials_match(request.headers.get("Authorization", ""), state.webhook_token):
            raise Unauthorized("the Alertmanager webhook needs its token (bearer, or the basic-auth password)")
        if not request.is_json:
            raise UnsupportedMediaType("the Alertmanager webhook sends application/json")
        raw = _body(MAX_WEBHOOK_BYTES, "webhook payload")
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
            raise BadRequest("not an Alertmanager webhook payload (no alerts list)")
        alerts = [a for a in payload["alerts"] if isinstance(a, dict)][:MAX_ALERTS_PER_WEBHOOK]
        wait_s = state.budget.take(len(alerts))
        if wait_s:
            resp = jsonify(error=f"more than {state.budget.per_minute} alerts a minute; retry later")
            resp.headers["Retry-After"] = str(math.ceil(wait_s))
            return resp, 503
        if state.deferred:
            # Alertmanager would time out and re-send while a model thinks: accept now, post later.
            if not state.worker.submit(lambda: [_handle_alert(state, alert) for alert in alerts]):
                return jsonify(error="too many webhook batches waiting; retry later"), 503
            return jsonify(received=len(alerts), queued=True), 202
        results = [_handle_alert(state, alert) for alert in alerts]
        sent = [r for r in results if r.get("notified") is not None]
        delivered = sum(1 for r in sent if r["notified"])
        body = {"received": len(alerts), "notified": delivered, "results": results}
        if state.notifier.enabled and sent and delivered == 0:
            return jsonify(error="no chat message could be delivered", **body), 503
        return jsonify(body), 200

    @blueprint.post("/v1/slack/commands")
    def slack_command() -> tuple[Response, int]:
        state = get_state()
        raw = _body(MAX_SLACK_BYTES, "Slack command")  # the signature covers the exact bytes, before form parsing
        state.verifier.verify(
            request.headers.get("X-Slack-Request-Timestamp"), request.headers.get("X-Slack-Signature"), raw
        )
        form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        text = form.get("text", [""])[0]
        user = form.get("user_name", form.get("user_id", ["someone"]))[0][:80]
        response_url = form.get("response_url", [""])[0]
        try:
            command = parse_command(text)
        except VigilError as exc:
            return _slack(Reply(f"Sorry: {exc}", ok=False)), 200
        if command.name == "explain" and response_url.startswith(state.response_url_prefixes):
            # Slack drops answers slower than 3 s; evidence (a few dozen queries) and a model may be slower.
            entity = command.entity
            if not state.worker.submit(lambda: _deferred_explain(state, entity, response_url)):
                return _slack(Reply("Too many explanations in progress; try again in a minute.", ok=False)), 200
            return _slack(Reply(f"Looking into {command.entity or 'the most anomalous entity'}...", ok=True)), 200
        return _slack(state.chatops.handle(text, user=f"slack:{user}")), 200


def _body(limit: int, what: str) -> bytes:
    """The request body, refused past ``limit`` bytes before more is read: up front by its
    Content-Length, and while reading for a chunked body (Werkzeug stops such a stream at the
    maximum without a word, so one byte more is asked for)."""
    if (request.content_length or 0) > limit:
        raise PayloadTooLarge(f"{what} larger than {limit} bytes")
    request.max_content_length = limit + 1
    data = request.get_data(cache=True)
    if len(data) > limit:
        raise PayloadTooLarge(f"{what} larger than {limit} bytes")
    return data


def _slack(reply: Reply) -> Response:
    return jsonify(response_type="in_channel" if reply.ok else "ephemeral", text=reply.text)


def _deferred_explain(state: ChatOpsState, entity: str | None, response_url: str) -> None:
    try:
        explanation = state.chatops.explain(entity)
        reply = Reply(explanation.text)
    except VigilError as exc:
        reply = Reply(f"Sorry: {exc}", ok=False)
    try:
        requests.post(
            response_url,
            json={"response_type": "in_channel" if reply.ok else "ephemeral", "text": reply.text},
            timeout=10,
        )
    except requests.RequestException as exc:
        log.warning("could not post the deferred Slack answer: %s", exc)


def anomaly_from_alert(alert: dict[str, Any], entity: str) -> Anomaly:
    """Rebuild an anomaly from an alert's annotations (Vigil's own alerts carry the attribution)."""
    annotations = _mapping(alert.get("annotations"))

    def number(key: str) -> float:
        try:
            return float(annotations.get(key, "nan"))
        except (TypeError, ValueError):
            return math.nan

    contributions: list[Contribution] = []
    try:
        for item in json.loads(annotations.get("contributions") or "[]")[:10]:
            contributions.append(
                Contribution(
                    str(item["metric"]),
                    float(item.get("value") if item.get("value") is not None else math.nan),
                    float(item.get("baseline") if item.get("baseline") is not None else math.nan),
                    float(item.get("share") or 0.0),
                    str(item.get("unit") or ""),
                )
            )
    except (ValueError, TypeError, KeyError):
        # The serving dispatcher's form: "cpu_busy=0.62, load1=0.25" (metric=share).
        contributions = []
        for part in str(annotations.get("contributions", "")).split(",")[:10]:
            name, _, share = part.strip().rpartition("=")
            try:
                contributions.append(Contribution(name, math.nan, math.nan, float(share)))
            except ValueError:
                continue
        contributions = [c for c in contributions if c.metric]
    if not contributions and annotations.get("top_metric"):
        contributions.append(Contribution(str(annotations["top_metric"]), math.nan, math.nan, 1.0))
    try:
        started = parse_rfc3339(str(alert.get("startsAt", "")))
    except ValueError:
        started = math.nan
    return Anomaly(
        entity=entity,
        timestamp=started,
        score=number("score"),
        threshold=number("threshold"),
        active=alert.get("status", "firing") == "firing",
        contributions=tuple(contributions),
        model_version=str(annotations.get("model_version", "")),
    )


def _mapping(value: object) -> dict[str, Any]:
    """An alert's labels or annotations; anything but an object is none."""
    return value if isinstance(value, dict) else {}


def _handle_alert(state: ChatOpsState, alert: dict[str, Any]) -> dict[str, Any]:
    labels = _mapping(alert.get("labels"))
    entity = labels.get("entity") or labels.get("instance")
    alertname = str(labels.get("alertname", "alert"))[:100]
    if not isinstance(entity, str) or not entity:
        return {"alertname": alertname, "skipped": "no entity label"}
    result: dict[str, Any] = {"alertname": alertname, "entity": entity, "status": alert.get("status")}
    if state.own_alerts and alertname in RULE_COPIES and labels.get("source") == "prometheus":
        # Alertmanager's inhibition mutes the copy only while Vigil's alert fires; the rule resolves
        # an evaluation later, so each anomaly's end would otherwise reach chat as a new "firing".
        result["skipped"] = "the Prometheus rule's copy of Vigil's own alert"
        return result
    key, now = PostedAlerts.key(alert), time.time()
    if not state.posted.is_new(key, now):
        result["skipped"] = "already posted"
        return result
    incident = _mapping(alert.get("annotations")).get("incident")
    incident = incident[:64] if isinstance(incident, str) and incident.isprintable() else ""
    role = state.posted.claim(incident, key)
    if incident:
        result["incident"] = incident
        if role == "again" or (role == "joined" and alert.get("status") == "resolved"):
            result["skipped"] = f"part of incident {incident}, already in chat"
            return result
    explanation: Explanation | None = None
    if alert.get("status") == "resolved":
        title = f"[RESOLVED] {alertname} on {entity}"
        body = f"{entity} is back to normal."
    else:
        anomaly = _anomaly_for_alert(state, alert, entity)
        explanation = state.chatops.explain_alert(anomaly)
        result.update(signature=explanation.signature, explainer=explanation.explainer)
        if explanation.llm.get("reason"):
            result["llm_reason"] = explanation.llm["reason"]
        status = "UPDATE" if role == "joined" else "FIRING"
        title = f"[{status}] {alertname} on {entity}: {_cause(explanation)}"
        if role == "joined":
            title += f" (joins incident {incident})"
        body = _message_body(state, alert, explanation, incident)
    result["notified"] = state.notifier.notify(title, body) if state.notifier.enabled else None
    state.sent(incident or entity, title, body, result["notified"], explanation)
    if result["notified"]:
        state.posted.remember(key, now)
        if incident and role == "lead" and alert.get("status") == "resolved":
            state.posted.release(incident)
        if explanation is not None and state.chatops.provisional(explanation):
            look = _SecondLook(alert, entity, alertname, incident, explanation)
            result["second_look"] = state.second_looks.submit(lambda: look.run(state), delay_s=SECOND_LOOK_S)
    return result


def _cause(explanation: Explanation) -> str:
    """The cause as a title names it: ``dependency outage at database`` (the dependency at fault, when
    the evidence names one)."""
    cause = explanation.signature.replace("_", " ")
    return f"{cause} at {explanation.at}" if explanation.at else cause


def _message_body(state: ChatOpsState, alert: dict[str, Any], explanation: Explanation, incident: str) -> str:
    body = explanation.text + f"\n\n(explained by: {explanation.explainer})"
    if incident:
        body += f"\nIncident: {incident} (/vigil ack {incident}; if nothing is wrong: /vigil false-positive {incident})"
    link = alert.get("generatorURL")
    if isinstance(link, str) and link.startswith(state.link_prefixes) and link.isprintable():
        body += f"\nGraph: {link}"
    return body


@dataclass(frozen=True)
class _SecondLook:
    """A posted alert whose explanation may change once its dependencies' calls have ended
    (:meth:`ChatOps.provisional`): explained again, and an ``[UPDATE]`` posted if the cause changed,
    while its entity is still anomalous. The first message is never held back for it."""

    alert: dict[str, Any]
    entity: str
    alertname: str
    incident: str
    first: Explanation

    def run(self, state: ChatOpsState) -> None:
        live = [a for a in state.chatops.anomalies() if a.entity == self.entity]
        if live and not live[0].active:
            return  # over before its cause showed: its resolve is the next news
        revised = state.chatops.second_look(_anomaly_for_alert(state, self.alert, self.entity), self.first)
        if revised is None:
            return
        was = self.first.signature.replace("_", " ")
        title = f"[UPDATE] {self.alertname} on {self.entity}: {_cause(revised)} (was read as {was}"
        title += f"; incident {self.incident})" if self.incident else ")"
        body = _message_body(state, self.alert, revised, self.incident)
        delivered = state.notifier.notify(title, body) if state.notifier.enabled else None
        state.sent(self.incident or self.entity, title, body, delivered, revised)


def _anomaly_for_alert(state: ChatOpsState, alert: dict[str, Any], entity: str) -> Anomaly:
    live = [a for a in state.chatops.anomalies() if a.entity == entity]
    anomaly = live[0] if live else anomaly_from_alert(alert, entity)
    if not anomaly.contributions and state.chatops.lookup is not None:
        try:
            anomaly = state.chatops.lookup(entity)
        except (NotFound, VigilError):
            pass
    return anomaly


_add_routes(bp, _app_state)


@bp.get("/v1/chat/messages/<path:key>")
@require_read_token
def chat_messages(key: str) -> Response:
    """What the serving app posted for an incident id (or, outside incidents, an entity), oldest first."""
    return jsonify(messages=_app_state().chatlog.messages(key))
