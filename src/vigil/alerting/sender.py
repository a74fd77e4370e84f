"""Turn anomalies into Alertmanager alerts: one per entity and episode, kept alive, resolved, never lost.

Alertmanager forgets an alert once its ``endsAt`` passes, so every firing alert carries an ``endsAt`` a
little in the future (``alert_ttl_s``) and is re-posted every ``resend_interval_s``. If Vigil dies, the
alerts therefore resolve themselves after the TTL instead of firing forever.

While Alertmanager is unreachable nothing is dropped: the tracked state *is* the queue. An entity's
latest state supersedes its earlier undelivered states (a resolve replaces the firing it ends), so the
queue is bounded by the number of entities, capped at ``max_pending``. ``endsAt`` is computed at send
time, so an alert delivered after a long outage is still alive when it lands.

With ``state_path`` the queue also outlives the process: every change of an alert's episode (it
starts, ends, or is delivered for good) is written there (fsynced, atomically replaced) before the
call returns, and loaded on start, so Vigil killed during an Alertmanager outage still delivers the
alert, with its original ``startsAt``, once both are back. A restored firing alert that no engine
claims again within ``alert_ttl_s`` (its entity came back cold and normal) is resolved.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.alerting.client import AlertmanagerClient, rfc3339
from vigil.errors import BadRequest, UpstreamUnavailable
from vigil.events import Anomaly
from vigil.promql import string_literal
from vigil.statefile import FormatCheck, check_json_format, move_aside, write_atomic

log = logging.getLogger(__name__)

ALERTNAME = "VigilAnomaly"
QUEUE_FORMAT = 1  # of state/alerts.json


def default_severity(score: float) -> str:
    return "critical" if score >= 0.95 else "warning"


@dataclass
class _Tracked:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    ends_at: float | None = None  # set once the anomaly is over
    last_sent: float | None = None
    dirty: bool = True  # the latest state has not reached Alertmanager yet
    version: int = 0  # bumped on every change, so a send racing with a change does not clear ``dirty``
    queued_at: float = field(default_factory=time.monotonic)
    restored_at: float | None = None  # loaded from the state file and not yet claimed by an engine

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "annotations": self.annotations,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
        }


@dataclass(frozen=True)
class SenderStats:
    firing: int
    pending: int
    sent: int
    failed_attempts: int
    dropped: int
    rejected: int
    last_error: str


class AlertSender:
    """Keep Alertmanager in step with the anomalies Vigil currently sees.

    Parameters
    ----------
    client : AlertmanagerClient
    resend_interval_s : float
        How often a firing alert is re-posted; must be below ``alert_ttl_s``.
    alert_ttl_s : float
        How far in the future a firing alert's ``endsAt`` lies; default ``4 * resend_interval_s``.
    max_pending : int
        Cap on tracked alerts (firing plus undelivered resolves). Beyond it undelivered resolves are
        dropped first (Alertmanager ends those alerts itself at their ``endsAt``), then new alerts.
    detector : str
        Value of the ``detector`` label.
    ui_url, prometheus_url : str
        Bases for the ``link`` annotation and the ``generatorURL`` graph link; empty leaves them out.
    severity : callable
        score of the first anomalous sample -> severity; frozen for the episode so labels stay stable.
    clock : callable
        Wall-clock seconds (tests pass their own).

    Examples
    --------
    >>> from vigil.events import Anomaly, Contribution
    >>> sender = AlertSender(AlertmanagerClient("http://127.0.0.1:9"), resend_interval_s=30)
    >>> a = Anomaly("db-1", 1.7e9, 0.97, 0.8, True, (Contribution("cpu_busy", 0.98, 0.2, 0.7),))
    >>> sender.observe(a)
    >>> sender.firing_entities()
    ['db-1']
    """

    def __init__(
        self,
        client: AlertmanagerClient,
        *,
        resend_interval_s: float = 60.0,
        alert_ttl_s: float | None = None,
        max_pending: int = 10_000,
        detector: str = "ensemble",
        ui_url: str = "",
        prometheus_url: str = "",
        extra_labels: Mapping[str, str] | None = None,
        severity: Callable[[float], str] = default_severity,
        clock: Callable[[], float] = time.time,
        max_backoff_s: float = 30.0,
        top_n: int = 5,
        state_path: Path | None = None,
    ) -> None:
        ttl = 4 * resend_interval_s if alert_ttl_s is None else alert_ttl_s
        if not 0 < resend_interval_s < ttl:
            raise ValueError("resend_interval_s must be positive and below alert_ttl_s, or alerts would expire")
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.client = client
        self.resend_interval_s = resend_interval_s
        self.alert_ttl_s = ttl
        self.max_pending = max_pending
        self.detector = detector
        self.ui_url = ui_url.rstrip("/")
        self.prometheus_url = prometheus_url.rstrip("/")
        self.extra_labels = dict(extra_labels or {})
        self.severity = severity
        self.clock = clock
        self.max_backoff_s = max_backoff_s
        self.top_n = top_n
        self._tracked: dict[str, _Tracked] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # one delivery at a time, or two flushes could reorder states
        self._next_attempt = 0.0
        self._failures_in_row = 0
        self._sent = self._failed = self._dropped = self._rejected = 0
        self._last_error = ""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.state_path = state_path
        if state_path is not None:
            self._load_state(state_path)

    # ---- persistence -------------------------------------------------------------------------------

    def _load_state(self, path: Path) -> None:
        if not path.is_file():
            return
        try:
            saved = json.loads(path.read_text())
            if saved.get("format") != QUEUE_FORMAT:
                raise ValueError(f"format {saved.get('format')!r}, not {QUEUE_FORMAT}")
            for entity, rec in saved["alerts"].items():
                ends = rec["ends_at"]
                self._tracked[str(entity)] = _Tracked(
                    {str(k): str(v) for k, v in rec["labels"].items()},
                    {str(k): str(v) for k, v in rec["annotations"].items()},
                    starts_at=float(rec["starts_at"]),
                    ends_at=None if ends is None else float(ends),
                    restored_at=self.clock(),
                )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = move_aside(path)
            log.error("alert queue %s is unreadable (%r); moved to %s, starting empty", path, exc, aside)
            self._tracked.clear()
            return
        log.info("restored %d undelivered or firing alert(s) from %s", len(self._tracked), path)

    def _save_state(self) -> None:
        """Write the queue; the caller holds ``_lock``."""
        if self.state_path is None:
            return
        data = json.dumps({"format": QUEUE_FORMAT, "alerts": {e: t.to_json() for e, t in self._tracked.items()}})
        try:
            write_atomic(self.state_path, data, durable=True)
        except OSError as exc:  # a full disk degrades restarts, never delivery
            log.error("cannot persist the alert queue to %s: %s", self.state_path, exc)

    # ---- state -------------------------------------------------------------------------------------

    def observe(self, anomaly: Anomaly) -> None:
        """Record one entity's current state; sends nothing (see :meth:`flush`)."""
        with self._lock:
            tracked = self._tracked.get(anomaly.entity)
            if anomaly.active:
                annotations = self._annotations(anomaly)
                if tracked is None:
                    if len(self._tracked) >= self.max_pending and not self._evict_one():
                        self._dropped += 1
                        log.error("alert queue full (%d), dropping new alert for %s", self.max_pending, anomaly.entity)
                        return
                    labels = {
                        "alertname": ALERTNAME,
                        **self.extra_labels,
                        "entity": anomaly.entity,
                        "severity": self.severity(anomaly.score),
                        "detector": self.detector,
                    }
                    now = self.clock()
                    start = min(anomaly.timestamp, now) if math.isfinite(anomaly.timestamp) else now
                    self._tracked[anomaly.entity] = _Tracked(labels, annotations, starts_at=start)
                    self._save_state()
                    return
                tracked.restored_at = None
                if tracked.ends_at is not None:
                    # Fired again before the resolve was delivered: Alertmanager never saw it end.
                    tracked.ends_at = None
                    tracked.dirty = True
                    self._save_state()
                tracked.annotations = annotations  # carried by the next scheduled re-post
                tracked.version += 1
            elif tracked is not None and tracked.ends_at is None:
                tracked.restored_at = None
                # Serving stamps a step with the grid point at or after its samples and scores it as
                # soon as they are in, up to a step ahead of the clock. Alertmanager reads an endsAt in
                # the future as "firing until then" and keeps the later endsAt it already has, so the
                # alert would stay up for its TTL and swallow the entity's next alarm.
                now = self.clock()
                end = anomaly.timestamp if math.isfinite(anomaly.timestamp) else now
                tracked.ends_at = min(max(end, tracked.starts_at), now)
                tracked.dirty = True
                tracked.version += 1
                self._save_state()

    def resolve(self, entity: str, at: float | None = None) -> None:
        """End an entity's alert without an :class:`Anomaly` (entity removed, model unloaded)."""
        with self._lock:
            tracked = self._tracked.get(entity)
            if tracked is not None and tracked.ends_at is None:
                tracked.ends_at = self.clock() if at is None else min(at, self.clock())
                tracked.dirty = True
                tracked.version += 1
                self._save_state()

    def process(self, anomalies: Iterable[Anomaly], *, flush: bool = True) -> int:
        """Observe every anomaly, then (by default) deliver what is due; returns alerts delivered.

        Pass ``flush=False`` on a latency-critical path and let :meth:`start`'s thread deliver.
        """
        for anomaly in anomalies:
            self.observe(anomaly)
        return self.flush() if flush else 0

    def _evict_one(self) -> bool:
        resolved = [(t.queued_at, e) for e, t in self._tracked.items() if t.ends_at is not None]
        if not resolved:
            return False
        _, entity = min(resolved)
        del self._tracked[entity]
        self._save_state()
        self._dropped += 1
        log.warning("alert queue full, dropped the undelivered resolve of %s (it expires at its endsAt)", entity)
        return True

    # ---- payloads ----------------------------------------------------------------------------------

    def _annotations(self, anomaly: Anomaly) -> dict[str, str]:
        # The engine's order, not the shares: it leads with the signals that moved enough to matter.
        top = list(anomaly.contributions)[: self.top_n]
        lines = [f"{c.metric}={_num(c.value)} (baseline {_num(c.baseline)}, {c.share:.0%})" for c in top]
        names = ", ".join(c.metric for c in top[:3]) or "no attribution"
        annotations = {
            "summary": f"Anomaly on {anomaly.entity}: score {anomaly.score:.2f} (threshold {anomaly.threshold:.2f}),"
            f" driven by {names}",
            "top_metrics": "; ".join(lines),
            # Machine-readable copy for the webhook receiver, which rebuilds evidence from it.
            "contributions": json.dumps(
                [
                    {
                        "metric": c.metric,
                        "value": _finite(c.value),
                        "baseline": _finite(c.baseline),
                        "share": c.share,
                        "unit": c.unit,
                    }
                    for c in top
                ],
                separators=(",", ":"),
            ),
            "score": f"{anomaly.score:.4f}",
            "threshold": f"{anomaly.threshold:.4f}",
        }
        if anomaly.detector_scores:
            annotations["detector_scores"] = ", ".join(
                f"{name}={score:.2f}" for name, score in sorted(anomaly.detector_scores.items())
            )
        if anomaly.model_version:
            annotations["model_version"] = anomaly.model_version
        if anomaly.incident:
            annotations["incident"] = anomaly.incident
        if self.ui_url:
            annotations["link"] = f"{self.ui_url}/entities/{urllib.parse.quote(anomaly.entity, safe='')}"
        elif self.prometheus_url:
            annotations["link"] = self._graph_url(anomaly.entity)
        return annotations

    def _graph_url(self, entity: str) -> str:
        expr = f"vigil_anomaly_score{{entity={string_literal(entity)}}}"
        query = urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": "1h"})
        return f"{self.prometheus_url}/graph?{query}"

    def build_alert(self, tracked: _Tracked, *, now: float) -> dict[str, Any]:
        ends = tracked.ends_at if tracked.ends_at is not None else now + self.alert_ttl_s
        alert: dict[str, Any] = {
            "labels": dict(tracked.labels),
            "annotations": dict(tracked.annotations),
            "startsAt": rfc3339(tracked.starts_at),
            "endsAt": rfc3339(ends),
        }
        if self.prometheus_url:
            alert["generatorURL"] = self._graph_url(tracked.labels["entity"])
        return alert

    # ---- delivery ----------------------------------------------------------------------------------

    def flush(self) -> int:
        """Deliver every alert that is new, changed state, or due for its re-post; returns how many."""
        with self._send_lock:
            now = self.clock()
            with self._lock:
                for tracked in self._tracked.values():
                    if tracked.restored_at is not None and now - tracked.restored_at >= self.alert_ttl_s:
                        tracked.restored_at = None
                        if tracked.ends_at is None:  # no engine claimed it: its entity is back and normal
                            tracked.ends_at = now
                            tracked.dirty = True
                            tracked.version += 1
                            self._save_state()
                if time.monotonic() < self._next_attempt:
                    return 0
                due = []
                for entity, t in list(self._tracked.items()):
                    if not (t.dirty or t.last_sent is None or now - t.last_sent >= self.resend_interval_s):
                        continue
                    try:
                        due.append((entity, t.version, self.build_alert(t, now=now)))
                    except (ValueError, OverflowError, OSError, KeyError) as exc:
                        # One alert that cannot be expressed (a timestamp before year 1) must not hold back
                        # every other alert, round after round.
                        del self._tracked[entity]
                        self._rejected += 1
                        self._last_error = f"alert for {entity} could not be built: {exc}"
                        self._save_state()
                        log.error("dropping the alert for %s: it could not be built (%s)", entity, exc)
            if not due:
                return 0
            try:
                self.client.post_alerts([alert for _, _, alert in due])
            except UpstreamUnavailable as exc:
                with self._lock:
                    self._failed += 1
                    self._failures_in_row += 1
                    self._last_error = str(exc)
                    backoff = min(self.max_backoff_s, 0.5 * 2 ** min(self._failures_in_row, 10))
                    self._next_attempt = time.monotonic() + backoff
                log.warning("Alertmanager unavailable, %d alert(s) kept for retry in %.1fs: %s", len(due), backoff, exc)
                return 0
            except BadRequest as exc:
                # Our payloads are built here, so a 400 is a bug; retrying the same bytes would loop forever.
                with self._lock:
                    self._rejected += len(due)
                    self._last_error = str(exc)
                    for entity, version, _ in due:
                        tracked = self._tracked.get(entity)
                        if tracked is not None and tracked.version == version:
                            tracked.dirty = False
                            tracked.last_sent = now
                            if tracked.ends_at is not None:
                                del self._tracked[entity]
                    self._save_state()
                log.error("Alertmanager rejected %d alert(s): %s", len(due), exc)
                return 0
            resolved_any = False
            with self._lock:
                self._failures_in_row = 0
                self._next_attempt = 0.0
                self._sent += len(due)
                for entity, version, _ in due:
                    tracked = self._tracked.get(entity)
                    if tracked is None:
                        continue
                    tracked.last_sent = now
                    if tracked.version == version:
                        tracked.dirty = False
                        if tracked.ends_at is not None:
                            del self._tracked[entity]
                            resolved_any = True
                if resolved_any:
                    self._save_state()
            return len(due)

    def start(self, interval_s: float = 1.0) -> None:
        """Deliver and re-post from a daemon thread every ``interval_s``."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.flush()
                except Exception:  # the thread must outlive any bug in one round
                    log.exception("alert delivery round failed")

        self._thread = threading.Thread(target=loop, name="vigil-alert-sender", daemon=True)
        self._thread.start()

    def stop(self, *, final_flush: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if final_flush:
            with self._lock:
                self._next_attempt = 0.0
            self.flush()

    def stats(self) -> SenderStats:
        with self._lock:
            return SenderStats(
                firing=sum(1 for t in self._tracked.values() if t.ends_at is None),
                pending=sum(1 for t in self._tracked.values() if t.dirty),
                sent=self._sent,
                failed_attempts=self._failed,
                dropped=self._dropped,
                rejected=self._rejected,
                last_error=self._last_error,
            )

    def firing_entities(self) -> list[str]:
        with self._lock:
            return sorted(e for e, t in self._tracked.items() if t.ends_at is None)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _num(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "n/a"


def check_alert_queue(path: Path) -> FormatCheck:
    """What this version does with the alert queue at ``path`` (``vigil upgrade-check``)."""
    return check_json_format(
        "alert queue", path, "format", QUEUE_FORMAT,
        consequence="Alerts not yet delivered are lost; those still firing are sent again by the next scored step.",
    )  # fmt: skip
