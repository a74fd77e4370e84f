"""Every error leaves the service as JSON ``{"error": reason}`` with the status its type carries."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from vigil.errors import BadRequest, ModelError, Overloaded, Unauthorized, UpstreamUnavailable, VigilError

log = logging.getLogger(__name__)


def _json(reason: str, status: int) -> tuple[Response, int]:
    return jsonify(error=reason), status


def json_body(usage: str) -> dict[str, Any]:
    """The request's JSON object; anything else is a 400 that shows ``usage``, the shape expected."""
    body: Any = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest(f"send JSON {usage}")
    return body


def text_field(body: dict[str, Any], key: str, usage: str, *, required: bool = True) -> str:
    """``body[key]`` as a string (``""`` when absent and not ``required``); else a 400 showing ``usage``."""
    value = body.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value):
        raise BadRequest(f'"{key}" must be {"a non-empty" if required else "a"} string: send JSON {usage}')
    return value


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(VigilError)
    def vigil_error(exc: VigilError) -> tuple[Response, int]:
        resp, status = _json(str(exc), exc.http_status)
        if isinstance(exc, ModelError | UpstreamUnavailable | Overloaded):
            # 503 means "retry later": say when, so remote_write senders back off sensibly.
            resp.headers["Retry-After"] = "5"
        if isinstance(exc, Unauthorized):
            resp.headers["WWW-Authenticate"] = 'Bearer realm="vigil"'
        return resp, status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return _json(exc.description or exc.name, exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return _json(f"internal error: {type(exc).__name__}", 500)
