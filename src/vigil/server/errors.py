"""Every error leaves the service as JSON ``{"error": reason}`` with the status its type carries."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from vigil.errors import ModelError, Overloaded, Unauthorized, UpstreamUnavailable, VigilError

log = logging.getLogger(__name__)


def _json(reason: str, status: int) -> tuple[Response, int]:
    return jsonify(error=reason), status


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
