"""Liveness, readiness and the model endpoints (reload and promote need the admin token; the reads,
the read token when one is set)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from vigil.detection.service import DetectionService
from vigil.errors import NotFound
from vigil.server.audit import AuditLog
from vigil.server.auth import require_read_token, require_token
from vigil.server.errors import json_body, text_field

bp = Blueprint("health", __name__)


def _service() -> DetectionService:
    return current_app.extensions["vigil"].service  # type: ignore[no-any-return]


@bp.get("/livez")
def livez() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    state = _service().readiness()
    return jsonify(ready=state.ready, reasons=state.reasons), 200 if state.ready else 503


@bp.get("/v1/models")
@require_read_token
def models() -> Response:
    return jsonify(_service().models())


@bp.post("/v1/models/reload")
@require_token
def reload() -> Response:
    loaded = _service().reload(force=True)
    return jsonify(serving=None if loaded is None else loaded.version)


@bp.post("/v1/models/promote")
@require_token
def promote() -> Response:
    usage = '{"version": "<model version>", "model": "<name, when several are served>"}'
    body = json_body(usage)
    version = text_field(body, "version", usage)
    model = text_field(body, "model", usage, required=False)
    service = _service()
    loaded = service.promote(version, model)
    AuditLog.of_home(service.settings.home).record(
        "promote", model=model or "default", current=version, by=request.remote_addr or ""
    )
    return jsonify(serving=None if loaded is None else loaded.version)


@bp.get("/v1/entities")
@require_read_token
def entities() -> Response:
    views = _service().engine.views()
    return jsonify(
        entities=[
            {
                "entity": v.entity,
                "timestamp": v.timestamp,
                "score": v.score,
                "alarm": v.alarm,
                "above_threshold": v.above_threshold,
                "top_metric": v.top_metric,
                "detector_scores": v.detector_scores,
            }
            for v in sorted(views, key=lambda v: -v.score)
        ]
    )


@bp.get("/v1/incidents")
@require_read_token
def incidents() -> Response:
    return jsonify(incidents=_service().incident_list())


@bp.post("/v1/incidents/<incident_id>/feedback")
@require_token
def incident_feedback(incident_id: str) -> Response:
    """An operator acknowledges an incident or judges it: ``{"action": "ack" | "false_positive" |
    "confirmed", "by": "...", "note": "..."}``."""
    usage = '{"action": "ack" | "false_positive" | "confirmed", "by": "<who>", "note": "..."}'
    body = json_body(usage)
    action = text_field(body, "action", usage)
    by, note = text_field(body, "by", usage, required=False), text_field(body, "note", usage, required=False)
    return jsonify(incident=_service().incident_feedback(incident_id, action, by=by, note=note))


@bp.get("/v1/maintenance")
@require_read_token
def maintenance() -> Response:
    """Declared maintenance: ``vigil.yml``'s windows and those added here, each ``active``, ``planned`` or ``over``."""
    return jsonify(windows=_service().maintenance.windows())


@bp.post("/v1/maintenance")
@require_token
def add_maintenance() -> tuple[Response, int]:
    """``{"entities": [...] (none: every entity), "duration_s": 1800 or "end": ISO, "start": ISO (default
    now), "reason": "...", "by": "..."}``: the entities' alarms page nobody while it lasts."""
    body = json_body('{"entities": [...], "duration_s": 1800, "reason": "...", "by": "..."}')
    return jsonify(window=_service().maintenance.add(body)), 201


@bp.delete("/v1/maintenance/<window_id>")
@require_token
def end_maintenance(window_id: str) -> Response:
    return jsonify(window=_service().maintenance.end(window_id))


@bp.get("/v1/topology")
@require_read_token
def topology() -> Response:
    return jsonify(services=_service().incidents.topology.to_dict())


@bp.get("/v1/entities/<path:entity>")
@require_read_token
def entity(entity: str) -> Response:
    for event in _service().engine.anomalies():
        if event.entity == entity:
            return jsonify(
                entity=event.entity,
                timestamp=event.timestamp,
                score=event.score,
                threshold=event.threshold,
                alarm=event.active,
                model_version=event.model_version,
                detector_scores=event.detector_scores,
                contributions=[
                    {"metric": c.metric, "value": c.value, "baseline": c.baseline, "share": c.share}
                    for c in event.contributions
                ],
            )
    raise NotFound(f"no scored entity {entity[:200]!r}", hint="see GET /v1/entities")
