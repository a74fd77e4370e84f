"""The operator's web console at ``/ui/``, and the read endpoints its pages fetch.

Each page is one server-rendered shell (escaped by Jinja) that names what it shows; the script in
``static/console.js`` fills it from the JSON endpoints below, with the same bearer tokens as every
other endpoint. A token typed into the page's form lives in the tab's ``sessionStorage`` and goes
out as an ``Authorization`` header only: never in a URL or a cookie, so no other site can make a
browser act with it (no CSRF). Charts are drawn by uPlot, vendored under ``static/vendor`` (no CDN at
run time; docs/ui.md says why this and not a built bundle).

The shells of an entity or incident that does not exist answer 404 when the read role is open; with
a read token set, the shell cannot tell (it would reveal which entities exist to anyone), and the
page says "not found" once the API refuses the id.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request, send_file

from vigil.config import Settings
from vigil.detection.service import DetectionService
from vigil.durations import parse_duration
from vigil.errors import BadRequest, NotFound, UpstreamUnavailable, VigilError
from vigil.prometheus import PromClient
from vigil.promql import string_literal
from vigil.server.audit import AuditLog
from vigil.server.auth import require_read_token, require_token
from vigil.server.errors import json_body, text_field
from vigil.wiring import catalog_queries

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static", static_url_path="/ui/static")

SPARK_WINDOW_S = 15 * 60
SPARK_POINTS = 30
MAX_HISTORY_S = 7 * 86_400
HISTORY_POINTS = 600  # per series: enough for a laptop-wide chart, far under Prometheus' 11,000 limit


# The shells load only this blueprint's own script and styles (uPlot sets element styles from script,
# which style-src governs only for markup): an injected <script> or inline handler would not run.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@bp.after_request
def _page_headers(resp: Response) -> Response:
    if request.path.startswith("/ui"):
        for key, value in PAGE_HEADERS.items():
            resp.headers.setdefault(key, value)
    return resp


def _ctx() -> Any:
    return current_app.extensions["vigil"]


def _service() -> DetectionService:
    return _ctx().service  # type: ignore[no-any-return]


def _settings() -> Settings:
    return _ctx().settings  # type: ignore[no-any-return]


def _prometheus() -> PromClient:
    # Short: a page waits on it, and a slow Prometheus must show as a banner, not a hung page.
    return PromClient(_settings().effective_prometheus_url, timeout_s=4.0)


def _audit() -> AuditLog:
    return AuditLog.of_home(_settings().home)


# ---- pages -----------------------------------------------------------------------------------------


def _links() -> dict[str, str]:
    s = _settings()
    return {
        "prometheus": (s.chatops.public_prometheus_url or s.effective_prometheus_url).rstrip("/"),
        "alertmanager": (s.alerting.ui_url or s.effective_alertmanager_url).rstrip("/"),
    }


def _page(page: str, ident: str = "", status: int = 200, title: str = "") -> tuple[str, int]:
    html = render_template("console.html", page=page, ident=ident, title=title or page.title(), links=_links())
    return html, status


def _read_role_open() -> bool:
    return not _ctx().read_token


@bp.get("/ui")
@bp.get("/ui/")
def now_page() -> tuple[str, int]:
    return _page("now", title="Now")


@bp.get("/ui/entities/<path:entity>")
def entity_page(entity: str) -> tuple[str, int]:
    if _read_role_open() and entity not in {v.entity for v in _service().engine.views()}:
        return _page("missing", f"entity {entity}", 404, "Not found")
    return _page("entity", entity, title=entity)


@bp.get("/ui/incidents/<incident_id>")
def incident_page(incident_id: str) -> tuple[str, int]:
    if _read_role_open() and not any(i["id"] == incident_id for i in _service().incident_list()):
        return _page("missing", f"incident {incident_id}", 404, "Not found")
    return _page("incident", incident_id, title=f"Incident {incident_id}")


@bp.get("/ui/models")
def models_page() -> tuple[str, int]:
    return _page("models", title="Models")


@bp.get("/ui/validation")
def validation_page() -> tuple[str, int]:
    return _page("validation", title="Validation")


@bp.get("/ui/<path:anything>")
def unknown_page(anything: str) -> tuple[str, int]:
    return _page("missing", f"page /ui/{anything}", 404, "Not found")


# ---- what the pages read ----------------------------------------------------------------------------


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


@bp.get("/v1/overview")
@require_read_token
def overview() -> Response:
    """Every entity (alarms first) with a sparkline of its score, the open incidents, and the data
    warnings Prometheus holds (firing rules other than the anomaly alerts themselves, targets down)."""
    service = _service()
    views = sorted(service.engine.views(), key=lambda v: (not v.alarm, -v.score, v.entity))
    incidents = [i for i in service.incident_list() if i["status"] == "open"]
    in_incident = {e["entity"]: i["id"] for i in incidents for e in i["entities"]}
    now = time.time()
    sparks: dict[str, list[float | None]] = {}
    warnings: list[dict[str, Any]] = []
    prometheus_error = ""
    try:
        prom = _prometheus()
        step = SPARK_WINDOW_S / SPARK_POINTS
        for series in prom.query_range("vigil_anomaly_score", now - SPARK_WINDOW_S, now, step):
            entity = series.labels.get("entity", "")
            sparks[entity] = [_finite(float(v)) for v in series.values]
        for sample in prom.query('ALERTS{alertstate="firing", alertname!~"VigilAnomaly.*"}'):
            labels = {k: v for k, v in sample.labels.items() if k not in ("__name__", "alertstate")}
            warnings.append({"kind": "alert", "name": labels.pop("alertname", "alert"), "labels": labels})
        for sample in prom.query("up == 0"):
            labels = {k: v for k, v in sample.labels.items() if k != "__name__"}
            warnings.append({"kind": "target_down", "name": "target down", "labels": labels})
    except VigilError as exc:
        prometheus_error = str(exc)
    return jsonify(
        at=now,
        entities=[
            {
                "entity": v.entity,
                "timestamp": v.timestamp,
                "score": v.score,
                "alarm": v.alarm,
                "top_metric": v.top_metric,
                "top_share": v.top_share,
                "incident": in_incident.get(v.entity, ""),
                "spark": sparks.get(v.entity, []),
            }
            for v in views
        ],
        incidents=incidents,
        warnings=warnings,
        prometheus_error=prometheus_error,
    )


def _window_s(raw: str | None) -> float:
    try:
        window = parse_duration(raw or "1h")
    except VigilError as exc:
        raise BadRequest(f"window: {exc}", hint="e.g. 15m, 1h, 1d") from None
    if not 60 <= window <= MAX_HISTORY_S:
        raise BadRequest("window must be between 1m and 7d")
    return window


def _periods(timestamps: list[float], values: list[float], step: float) -> list[tuple[float, float]]:
    """Runs of a 0/1 series' ones as (start, end) times; a missing step ends a run."""
    out: list[tuple[float, float]] = []
    start = last = None
    for t, v in zip(timestamps, values, strict=True):
        on = math.isfinite(v) and v >= 0.5
        if on and start is not None and last is not None and t - last > 1.5 * step:
            out.append((start, last))
            start = None
        if on:
            start = t if start is None else start
            last = t
        elif start is not None and last is not None:
            out.append((start, last))
            start = None
    if start is not None and last is not None:
        out.append((start, last))
    return out


@bp.get("/v1/history/<path:entity>")
@require_read_token
def history(entity: str) -> Response:
    """One entity over ``?window=`` (default 1h): its model's signals, its score, the threshold it is
    judged against, its alarm periods, and the top contributing signal during each."""
    window = _window_s(request.args.get("window"))
    # One pass over the engines: the entity's latest event, and the model (and its signals) serving it.
    for name, engine in _service().engines.items():
        current = next((a for a in engine.anomalies() if a.entity == entity), None)
        if current is not None:
            model, loaded = name or "default", engine.loaded
            break
    else:
        raise NotFound(f"no scored entity {entity[:200]!r}", hint="see GET /v1/entities")
    now = time.time()
    # Whole seconds: Prometheus reads a step such as "1.5s" as no duration at all.
    step = float(max(math.ceil(_settings().scrape_interval_s), math.ceil(window / HISTORY_POINTS)))
    out: dict[str, Any] = {
        "entity": entity,
        "window_s": window,
        "step_s": step,
        "model": {"name": model, "version": current.model_version},
        "threshold": _finite(current.threshold),
        "score_now": current.score,
        "timestamp": current.timestamp,
        "alarm_now": current.active,
        "contributions": [
            {"metric": c.metric, "value": _finite(c.value), "baseline": _finite(c.baseline), "share": c.share}
            for c in current.contributions
        ],
        "score": None,
        "periods": [],
        "signals": {},
        "prometheus_error": "",
    }
    label = string_literal(entity)
    try:
        prom = _prometheus()

        def one(expr: str) -> tuple[list[float], list[float]] | None:
            series = prom.query_range(expr, now - window, now, step)
            if not series:
                return None
            return [float(t) for t in series[0].timestamps], [float(v) for v in series[0].values]

        score = one(f"vigil_anomaly_score{{entity={label}}}")
        out["score"] = None if score is None else {"t": score[0], "v": [_finite(v) for v in score[1]]}
        alarm = one(f"vigil_anomaly{{entity={label}}}")
        tops = prom.query_range(f"vigil_anomaly_top_metric{{entity={label}}}", now - window, now, step)
        for start, end in _periods(*alarm, step) if alarm else []:
            shares: dict[str, float] = {}
            for series in tops:
                inside = [v for t, v in zip(series.timestamps, series.values, strict=True) if start <= t <= end]
                if inside:
                    shares[series.labels.get("metric", "")] = len(inside)
            top = sorted(shares.items(), key=lambda kv: -kv[1])
            out["periods"].append({"start": start, "end": end, "top": [m for m, _ in top[:3]]})
        signal_query, _ = catalog_queries()
        for name in loaded.signals if loaded is not None else []:
            expr = signal_query(name, entity)
            found = one(expr) if expr else None
            if found is not None:
                out["signals"][name] = {"t": found[0], "v": [_finite(v) for v in found[1]]}
    except VigilError as exc:
        out["prometheus_error"] = str(exc)
    return jsonify(out)


@bp.get("/v1/incidents/<incident_id>")
@require_read_token
def incident(incident_id: str) -> Response:
    """One incident with its entities' current scores and top signals."""
    found = next((i for i in _service().incident_list() if i["id"] == incident_id), None)
    if found is None:
        raise NotFound(f"no incident {incident_id[:64]!r}", hint="see GET /v1/incidents")
    anomalies = {a.entity: a for a in _service().engine.anomalies()}
    for member in found["entities"]:
        a = anomalies.get(member["entity"])
        member["score"] = None if a is None else a.score
        member["top"] = [] if a is None else [
            {"metric": c.metric, "value": _finite(c.value), "baseline": _finite(c.baseline), "share": c.share}
            for c in a.contributions[:3]
        ]  # fmt: skip
    return jsonify(incident=found)


@bp.get("/v1/registry")
@require_read_token
def registry_versions() -> Response:
    """Every registered version with aliases, validation metrics and mode; drift as Prometheus has
    it; the console's recorded promote and rollback actions."""
    from vigil.registry import ModelRegistry

    try:
        registry = ModelRegistry(_settings())
        versions = [v.to_dict() for v in registry.list_versions()]
        modes = {name: registry.mode(name) for name in {v["name"] for v in versions}}
    except VigilError as exc:
        raise UpstreamUnavailable(f"the model registry cannot be read: {exc}") from None
    drift: dict[str, list[str]] = {}
    prometheus_error = ""
    try:
        for sample in _prometheus().query("vigil_drift_reason == 1"):
            drift.setdefault(sample.labels.get("entity", ""), []).append(sample.labels.get("reason", ""))
    except VigilError as exc:
        prometheus_error = str(exc)
    return jsonify(
        versions=versions, modes=modes, drift=drift, actions=_audit().recent(50),
        serving=_service().models().get("models", {}), prometheus_error=prometheus_error,
    )  # fmt: skip


@bp.post("/v1/models/rollback")
@require_token
def rollback() -> Response:
    """``{"model": "<name>"}``: champion back to the version it held before, then served."""
    from vigil.registry import ModelRegistry

    usage = '{"model": "<registered model name>"}'
    name = text_field(json_body(usage), "model", usage)
    move = ModelRegistry(_settings()).rollback(name)
    _audit().record("rollback", model=move.name, previous=move.previous, current=move.current, by=_who())
    loaded = _service().reload(force=True)
    return jsonify(move=move.to_dict(), serving=None if loaded is None else loaded.version)


def _who() -> str:
    return request.remote_addr or ""


def _latest_report() -> Path:
    reports = _settings().home / "validation" / "reports"
    found = sorted(reports.glob("*/results.json"), key=lambda p: p.stat().st_mtime) if reports.is_dir() else []
    if not found:
        raise NotFound("no campaign report yet", hint="run `vigil validate --profile quick`")
    return found[-1].parent


@bp.get("/v1/validation/latest")
@require_read_token
def latest_validation() -> Response:
    folder = _latest_report()
    try:
        result = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError) as exc:
        raise UpstreamUnavailable(f"{folder / 'results.json'}: unreadable ({exc})") from None
    return jsonify(run=folder.name, result=result, plots=sorted(p.name for p in folder.glob("*.png")))


@bp.get("/v1/validation/latest/<name>")
@require_read_token
def latest_validation_file(name: str) -> Response:
    folder = _latest_report()
    plots = {p.name: p for p in folder.glob("*.png")}
    if name not in plots:
        raise NotFound(f"no plot {name[:100]!r} in the latest report")
    return send_file(plots[name], mimetype="image/png")
