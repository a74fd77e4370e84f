"""The Flask app factory: settings -> detection service -> blueprints.

``create_app()`` is what gunicorn loads (``vigil.server.wsgi:app``) and what tests call with their
own settings (and, if they like, their own :class:`DetectionService`). With ``basic_auth_users`` in
``serving.web_config_file`` every request but the probes passes a basic auth gate first; TLS is
gunicorn's (see :mod:`vigil.server.gunicorn_conf`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask
from prometheus_client import CollectorRegistry

from vigil.config import Settings, load_settings
from vigil.detection.service import DetectionService
from vigil.selfmetrics import component_registry
from vigil.server import chatops_bp, console, health, metrics, predict, remote_write
from vigil.server.errors import register_error_handlers
from vigil.server.webconfig import BasicAuthGate, BasicAuthRequired, basic_auth_challenge, load_web_config
from vigil.tokens import resolve_read_token, resolve_token

log = logging.getLogger(__name__)


@dataclass
class VigilContext:
    settings: Settings
    service: DetectionService
    token: str  # admin role
    read_token: str  # read role; empty: the read endpoints are open
    registry: CollectorRegistry


def create_app(
    settings: Settings | None = None, *, service: DetectionService | None = None, start: bool = True
) -> Flask:
    settings = settings or load_settings()
    web = load_web_config(settings.serving.web_config_file)
    app = Flask("vigil")
    # Werkzeug enforces this on the body stream too (chunked uploads included): 413 before we read.
    app.config["MAX_CONTENT_LENGTH"] = settings.serving.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    service = service or DetectionService(settings)
    registry = component_registry()
    registry.register(metrics.DetectionCollector(service))
    app.extensions["vigil"] = VigilContext(
        settings, service, resolve_token(settings), resolve_read_token(settings), registry
    )
    register_error_handlers(app)
    if web.basic_auth_users:
        # Before every blueprint's own checks: basic auth is the transport gate, tokens the roles.
        app.before_request(BasicAuthGate(web.basic_auth_users).before_request)
        app.register_error_handler(BasicAuthRequired, basic_auth_challenge)
    for module in (health, remote_write, predict, metrics, chatops_bp, console):
        app.register_blueprint(module.bp)
    if start:
        service.start()
    return app
