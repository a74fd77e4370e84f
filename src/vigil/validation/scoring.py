"""Scoring a campaign: fault windows vs the alarms Vigil raised, with ``vigil bench``'s metric code.

The campaign period is laid on a regular grid (1 s at the local stack's scrape interval); a grid
step is labelled 1 while a fault is active and carries alert 1 while Vigil's ``vigil_anomaly`` was 1.
Event precision, recall, F1 and false runs come from :func:`vigil.evaluation.metrics.event_metrics`,
the function ``vigil bench`` uses, so the two report the same thing. An alarm counts for a fault if it
falls between the fault's start and ``max(tail_s, 10% of its length)`` after its end (recovery lag).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil import promql
from vigil.detection.incidents import Topology, incidents_of
from vigil.evaluation.metrics import event_metrics, point_metrics
from vigil.validation.profiles import HOST_FAULTS

TAIL_FRAC = 0.1  # as in vigil bench
ONSET_LOOKBACK_S = 5.0  # an alarm on for all of this before a fault's start was not raised by it


@dataclass(frozen=True)
class Window:
    type: str
    start: float
    end: float


def fault_side(fault_type: str) -> str:
    """Where a fault type's entity at fault is watched: ``host`` (its node_exporter) or ``service``
    (the watched service, whose alarms also carry its dependencies' faults)."""
    return "host" if fault_type.removesuffix("_weak") in HOST_FAULTS else "service"


def entity_side(entity: str, services: Collection[str]) -> str:
    return "service" if entity in services else "host"


def overlapping(fault: Mapping[str, Any]) -> str | None:
    """The other fault of the overlapping pair ``fault`` is in (its ``params["overlaps"]``), else None."""
    params = fault.get("params")
    other = params.get("overlaps") if isinstance(params, Mapping) else None
    return str(other) if other else None


def side_selectors(services: Collection[str]) -> dict[str, str]:
    """``vigil_anomaly`` of each side's entities, for the alarms an overlapping pair is judged on."""
    names = "|".join(promql.regex_literal(e) for e in sorted(services))
    return {
        "service": promql.selector("vigil_anomaly", [("entity", "=~", names)]),
        "host": promql.selector("vigil_anomaly", [("entity", "!~", names)]),
    }


def _windows(faults: Sequence[Mapping[str, Any]]) -> list[Window]:
    return [Window(str(f["type"]), float(f["start"]), float(f["end"])) for f in faults]


def grid(t0: float, t1: float, step_s: float) -> np.ndarray:
    return np.arange(t0, t1, step_s, dtype=np.float64)


def label_grid(ts: np.ndarray, windows: Sequence[Window]) -> np.ndarray:
    labels = np.zeros(len(ts), dtype=bool)
    for w in windows:
        labels |= (ts >= w.start) & (ts < w.end)
    return labels


def sample_alarm(ts: np.ndarray, alarm_ts: np.ndarray, alarm_values: np.ndarray, step_s: float) -> np.ndarray:
    """Alarm state on the grid: a step is 1 if any alarm sample inside ``[t, t + step)`` is 1."""
    out = np.zeros(len(ts), dtype=bool)
    if len(alarm_ts) == 0:
        return out
    on = np.asarray(alarm_ts, dtype=np.float64)[np.asarray(alarm_values, dtype=np.float64) > 0.5]
    idx = np.floor((on - ts[0]) / step_s).astype(np.int64) if len(ts) else np.array([], dtype=np.int64)
    idx = idx[(idx >= 0) & (idx < len(ts))]
    out[idx] = True
    return out


def _tail_s(w: Window, tail_s: float) -> float:
    return max(tail_s, math.ceil(TAIL_FRAC * (w.end - w.start)))


def first_in_window(times: np.ndarray, w: Window, tail_s: float) -> float | None:
    """Seconds from the fault's start to the first time in its window, ``None`` if there is none."""
    t = np.asarray(times, dtype=np.float64)
    hits = t[(t >= w.start) & (t < w.end + _tail_s(w, tail_s))]
    return float(hits.min() - w.start) if len(hits) else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else None


def _round(x: float | None, nd: int = 3) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), nd)


# The runbook (docs/runbooks/<signature>.md) an explanation of each fault type should point to.
EXPECTED_SIGNATURE = {
    "cpu_saturation": "cpu_saturation",
    "memory_pressure": "memory_pressure",
    "disk_io_saturation": "disk_io_saturation",
    "disk_full": "disk_full",
    "network_loss": "network_degradation",
    "network_bandwidth": "network_degradation",
    "network_delay": "network_degradation",
    "db_outage": "dependency_outage",
    "latency_regression": "latency_regression",
    "process_crash": "target_down",
}

# Where each fault lies, as its message must name it (issue 15's fixed expectations): the host for
# the host faults, the watched service for its own regression and crash, and for the network faults
# and the DB outage the dependency the demo service calls (`entities:` of the local stack: inventory
# over a network link, its database on the same machine).
EXPECTED_PLACE = {
    "cpu_saturation": "host",
    "memory_pressure": "host",
    "disk_io_saturation": "host",
    "disk_full": "host",
    "network_loss": "dependency:inventory",
    "network_bandwidth": "dependency:inventory",
    "network_delay": "dependency:inventory",
    "db_outage": "dependency:database",
    "latency_regression": "service",
    "process_crash": "service",
}


def names_place(message: Mapping[str, Any], place: str, services: Collection[str]) -> bool:
    """Whether a chat message puts the cause where ``place`` (:data:`EXPECTED_PLACE`) says it is."""
    kind, _, dependency = place.partition(":")
    named = str(message.get("dependency", ""))
    if kind == "dependency":
        return named == dependency
    return entity_side(str(message.get("entity", "")), services) == kind and not named


# A chat message trails its alarm by Alertmanager's group_wait, the webhook and the explainer; one
# raised inside a fault's window may land this much later and still belongs to that fault.
CHAT_GRACE_S = 15.0


def _chat_in_window(messages: Sequence[Mapping[str, Any]], w: Window, tail_s: float) -> list[Mapping[str, Any]]:
    """The messages that said something is wrong during a fault: an incident's ``firing`` one and the
    ``update`` another entity's alert of the incident made (before incidents, both were ``firing``)."""
    until = w.end + _tail_s(w, tail_s) + CHAT_GRACE_S
    return [m for m in messages if m.get("status") in ("firing", "update") and w.start <= float(m["t"]) < until]


def _share(flags: Iterable[bool]) -> float | None:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else None


def quiet_mask(ts: np.ndarray, windows: Sequence[Window], tail_s: float) -> np.ndarray:
    """Quiet time: grid steps outside every fault window and its tail."""
    return ~_in_windows(ts, windows, tail_s)


def _in_windows(ts: np.ndarray, windows: Sequence[Window], tail_s: float) -> np.ndarray:
    """Grid steps inside any of ``windows``, each extended by its tail."""
    inside = np.zeros(len(ts), dtype=bool)
    for w in windows:
        inside |= (ts >= w.start) & (ts < w.end + _tail_s(w, tail_s))
    return inside


def _without_runs_touching(alerts: np.ndarray, ts: np.ndarray, windows: Sequence[Window], tail_s: float) -> np.ndarray:
    """``alerts`` with every alarm run that overlaps one of ``windows`` (tail included) removed whole."""
    inside = _in_windows(ts, windows, tail_s)
    out = alerts.copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], alerts.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if inside[start:end].any():
            out[start:end] = False
    return out


def score_campaign(
    faults: Sequence[Mapping[str, Any]],
    *,
    t0: float,
    t1: float,
    alarm_ts: np.ndarray,
    alarm_values: np.ndarray,
    alert_times: Sequence[float] = (),
    chat_messages: Sequence[Mapping[str, Any]] = (),
    step_s: float = 1.0,
    tail_s: float = 30.0,
    side_alarms: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    services: Collection[str] = (),
) -> dict[str, Any]:
    """Overall and per-fault-type scores; per fault ``detected``, ``detect_s`` and ``alert_s``.

    A fault of an overlapping pair (``params["overlaps"]`` names the other) is judged on its own side only
    (:func:`fault_side`): its detection and onset on ``side_alarms[side]`` (``(timestamps, values)``
    of the max alarm of that side's entities; the overall alarm when not given), its chat messages
    on those from its side's entities (``services`` are the service entities). Per fault type, the
    pairs stand apart: their windows are masked like another type's.

    ``alert_times`` are the ``startsAt`` of Vigil's anomaly alerts seen in Alertmanager.
    ``chat_messages`` (``t``, ``status``, ``entity``, ``signature``) are what reached chat; per fault
    ``chat_s`` is the first firing message in its window and ``signature_match`` whether any of them
    named the fault's runbook (:data:`EXPECTED_SIGNATURE`); ``one_message_fraction`` is the share of
    faults that drew exactly one ``firing`` message (an incident's first; ``update`` messages of the
    same incident do not count).
    """
    windows = _windows(faults)
    ts = grid(t0, t1, step_s)
    labels = label_grid(ts, windows)
    alerts = sample_alarm(ts, alarm_ts, alarm_values, step_s)
    min_tail = max(1, math.ceil(tail_s / step_s))
    overall = event_metrics(labels, alerts, min_tail=min_tail, tail_frac=TAIL_FRAC)
    quiet_hours = (~labels).sum() * step_s / 3600

    # The event rule counts an alarm that was already on when a fault began as detecting it, so one
    # alarm stuck on for the whole run scores perfectly. These figures expose that case.
    quiet = quiet_mask(ts, windows, tail_s)
    quiet_alarm_fraction = float(alerts[quiet].mean()) if quiet.any() else 0.0
    sides = {side: sample_alarm(ts, *series, step_s) for side, series in (side_alarms or {}).items()}
    per_fault = []
    for f, w in zip(faults, windows, strict=True):
        seen, chats = alerts, _chat_in_window(chat_messages, w, tail_s)
        if overlapping(f):
            side = fault_side(w.type)
            seen = sides.get(side, alerts)
            chats = [m for m in chats if entity_side(str(m.get("entity", "")), services) == side]
        detect = first_in_window(ts[seen], w, tail_s)
        alert = first_in_window(np.asarray(alert_times, dtype=np.float64), w, tail_s)
        before = seen[(ts >= w.start - ONSET_LOOKBACK_S) & (ts < w.start)]
        already_on = bool(len(before) and before.all())
        expected = EXPECTED_SIGNATURE.get(w.type.removesuffix("_weak"), "")
        per_fault.append(
            {**f, "detected": detect is not None, "detect_s": _round(detect, 1), "alert_s": _round(alert, 1),
             "alarm_on_before_start": already_on, "onset_detected": detect is not None and not already_on,
             "chat_s": _round(min(float(m["t"]) for m in chats) - w.start, 1) if chats else None,
             "chat": [{"entity": m.get("entity", ""), "signature": m.get("signature", ""),
                       "dependency": m.get("dependency", ""), "status": m.get("status", ""),
                       "s": _round(float(m["t"]) - w.start, 1)} for m in chats],
             "signature_expected": expected,
             "signature_match": any(m.get("signature") == expected for m in chats) if chats else None,
             "place_expected": EXPECTED_PLACE.get(w.type.removesuffix("_weak"), ""),
             "place_named": any(names_place(m, EXPECTED_PLACE.get(w.type.removesuffix("_weak"), ""), services)
                                for m in chats if m.get("status") != "resolved") if chats else None,
             "overlaps": overlapping(f)}
        )  # fmt: skip

    detects = [p["detect_s"] for p in per_fault if p["detect_s"] is not None]
    alert_lat = [p["alert_s"] for p in per_fault if p["alert_s"] is not None]
    by_type: dict[str, Any] = {}
    paired = [bool(p["overlaps"]) for p in per_fault]
    for kind in sorted({w.type for w, pair in zip(windows, paired, strict=True) if not pair}):
        mine = [w for w, pair in zip(windows, paired, strict=True) if w.type == kind and not pair]
        others = [w for w, pair in zip(windows, paired, strict=True) if w.type != kind or pair]
        # An alarm run raised by another fault type is neither a hit nor a false alarm for this one,
        # including the part of it that outlasts that fault's tail while the model recovers.
        masked = _without_runs_touching(alerts, ts, others, tail_s)
        m = event_metrics(label_grid(ts, mine), masked, min_tail=min_tail, tail_frac=TAIL_FRAC)
        single = [p for p in per_fault if p["type"] == kind and not p["overlaps"]]
        d = [p["detect_s"] for p in single if p["detect_s"] is not None]
        a = [p["alert_s"] for p in single if p["alert_s"] is not None]
        by_type[kind] = {
            "instances": len(mine),
            "detected": sum(1 for p in single if p["detected"]),
            "event_precision": _round(m["event_precision"]),
            "event_recall": _round(m["event_recall"]),
            "event_f1": _round(m["event_f1"]),
            "median_detect_s": _round(_percentile(d, 50), 1),
            "p90_detect_s": _round(_percentile(d, 90), 1),
            "alerted": len(a),
            "median_alert_s": _round(_percentile(a, 50), 1),
        }
    points = point_metrics(labels, alerts)
    chat_lat = [p["chat_s"] for p in per_fault if p["chat_s"] is not None]
    told = _told(per_fault)
    return {
        "event_precision": _round(overall["event_precision"]),
        "event_recall": _round(overall["event_recall"]),
        "event_f1": _round(overall["event_f1"]),
        "median_detect_s": _round(_percentile(detects, 50), 1),
        "p90_detect_s": _round(_percentile(detects, 90), 1),
        "median_alert_s": _round(_percentile(alert_lat, 50), 1),
        "p90_alert_s": _round(_percentile(alert_lat, 90), 1),
        "median_chat_s": _round(_percentile(chat_lat, 50), 1),
        "p90_chat_s": _round(_percentile(chat_lat, 90), 1),
        "signature_accuracy": told["signature_accuracy"],
        "place_accuracy": told["place_accuracy"],
        "one_message_fraction": told["one_message_fraction"],
        "false_alert_runs": int(overall["false_runs"]),
        "quiet_hours": round(quiet_hours, 4),
        "false_alert_runs_per_hour": _round(overall["false_runs"] / quiet_hours if quiet_hours else None, 2),
        "events": int(overall["events"]),
        "detected_events": int(overall["detected_events"]),
        "alert_runs": int(overall["alert_runs"]),
        "onset_recall": told["onset_recall"],
        "quiet_alarm_fraction": round(quiet_alarm_fraction, 4),
        "point_precision": _round(points["point_precision"]),
        "point_recall": _round(points["point_recall"]),
        "step_s": step_s,
        "tail_s": tail_s,
        "by_type": by_type,
        "overlaps": _overlap_summary([p for p in per_fault if p["overlaps"]]),
        "faults": per_fault,
    }


def _overlap_summary(paired: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The faults of overlapping pairs, each judged on its own side: the share detected at its onset,
    named right, and told in exactly one ``firing`` message of its side."""
    return {"faults": len(paired), **_told(paired)} if paired else None


def _told(per_fault: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Of ``per_fault``: the share detected at its onset, the share of those with a message whose
    messages named the right runbook, and the share (missed faults included) told in exactly one
    incident message (``firing``): chat should say each problem once."""
    matched = [p["signature_match"] for p in per_fault if p["signature_match"] is not None]
    placed = [p["place_named"] for p in per_fault if p.get("place_named") is not None]
    return {
        "onset_recall": _round(_share(p["onset_detected"] for p in per_fault)),
        "signature_accuracy": _round(sum(matched) / len(matched) if matched else None),
        "place_accuracy": _round(sum(placed) / len(placed) if placed else None),
        "one_message_fraction": _round(_share(sum(c["status"] == "firing" for c in p["chat"]) == 1 for p in per_fault)),
    }


def score_incidents(
    faults: Sequence[Mapping[str, Any]],
    alarms: Mapping[str, Any],
    topology: Topology,
    *,
    tail_s: float,
    join_s: float,
    resolve_s: float,
) -> dict[str, Any]:
    """Incidents per fault (the goal is one), from each entity's alarm over time (``alarms``: entity
    -> pandas Series of 0/1 indexed by unix seconds, as a recording or a replay holds it), grouped as
    serving groups them (:func:`vigil.detection.incidents.incidents_of`); see :func:`incidents_per_fault`."""
    transitions: list[tuple[float, str, bool]] = []
    for entity, series in alarms.items():
        on = np.asarray(series.to_numpy(dtype=np.float64) > 0.5)
        ts = np.asarray(series.index, dtype=np.float64)
        changed = np.flatnonzero(np.diff(np.concatenate([[False], on])))
        transitions += [(float(ts[i]), str(entity), bool(on[i])) for i in changed]
    transitions.sort()
    found = incidents_of(transitions, topology, join_s=join_s, resolve_s=resolve_s)
    return incidents_per_fault(faults, [i.to_dict() for i in found], tail_s=tail_s, services=set(topology.services))


def incidents_per_fault(
    faults: Sequence[Mapping[str, Any]],
    incidents: Sequence[Mapping[str, Any]],
    *,
    tail_s: float,
    services: Collection[str] = (),
) -> dict[str, Any]:
    """Incidents per fault from incidents as ``GET /v1/incidents`` lists them: an incident belongs
    to the fault whose window (its start to ``tail_s`` past its end) holds the incident's start; one
    that starts in none is a false incident. A fault of an overlapping pair counts only the incidents
    led by an entity of its own side (the entity that alarmed first; ``services`` are the service
    entities): the pair must make two incidents, one on each side, each named for its own fault."""
    per_fault = []
    claimed: set[str] = set()
    for f, w in zip(faults, _windows(faults), strict=True):
        mine = [i for i in incidents if w.start <= float(i["started"]) < w.end + _tail_s(w, tail_s)]
        if overlapping(f):
            mine = [i for i in mine if entity_side(_lead(i), services) == fault_side(w.type)]
        claimed |= {str(i["id"]) for i in mine}
        entities = [sorted(str(e["entity"]) for e in i["entities"]) for i in mine]
        per_fault.append({"type": w.type, "incidents": len(mine), "entities": entities, "overlaps": overlapping(f)})
    ones = sum(p["incidents"] == 1 for p in per_fault)
    return {
        "incidents": len(incidents),
        "false_incidents": len([i for i in incidents if str(i["id"]) not in claimed]),
        # Of every fault, missed ones included: the share that made exactly one incident.
        "one_incident_fraction": _round(ones / len(per_fault)) if per_fault else None,
        "per_fault": per_fault,
    }


def _lead(incident: Mapping[str, Any]) -> str:
    """The entity that alarmed first in an incident."""
    first = min(incident.get("entities") or [{}], key=lambda e: float(e.get("since", math.inf)))
    return str(first.get("entity", ""))
