"""Vigil's error hierarchy.

Every error Vigil raises on purpose derives from :class:`VigilError` and from the matching built-in,
so callers can catch either. Each carries an ``http_status`` (the server maps errors to responses in
one place) and an ``exit_code`` (the CLI prints one readable line and exits with it, no traceback)::

    VigilError
    ├── ConfigError(ValueError)              400 / exit 2   bad config file or setting
    ├── BadRequest(ValueError)               400            malformed client input
    │   ├── PayloadTooLarge                  413
    │   └── UnsupportedMediaType             415
    ├── Unauthorized(PermissionError)        401
    ├── NotFound(KeyError)                   404            unknown entity, model, dataset
    ├── DependencyMissing(RuntimeError)      500 / exit 3   a Debian package or binary is absent
    ├── PortInUse(OSError)                   500 / exit 4
    ├── UpstreamUnavailable(ConnectionError) 503 / exit 5   Prometheus, Alertmanager, LLM unreachable
    ├── ModelError(RuntimeError)             503 / exit 6   no model, corrupted artifact
    └── DataError(ValueError)                422 / exit 7   data that cannot be used (empty, wrong shape)
"""

from __future__ import annotations


class VigilError(Exception):
    http_status: int = 500
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(VigilError, ValueError):
    http_status = 400
    exit_code = 2


class BadRequest(VigilError, ValueError):
    http_status = 400
    exit_code = 2


class PayloadTooLarge(BadRequest):
    http_status = 413


class UnsupportedMediaType(BadRequest):
    http_status = 415


class Unauthorized(VigilError, PermissionError):
    http_status = 401
    exit_code = 2


class NotFound(VigilError, KeyError):
    http_status = 404
    exit_code = 2

    def __str__(self) -> str:  # KeyError would repr() the message
        return VigilError.__str__(self)


class DependencyMissing(VigilError, RuntimeError):
    exit_code = 3


class PortInUse(VigilError, OSError):
    exit_code = 4


class UpstreamUnavailable(VigilError, ConnectionError):
    http_status = 503
    exit_code = 5


class Overloaded(VigilError, RuntimeError):
    """Refused so that one client's expensive requests cannot take the service from the others; retry."""

    http_status = 503


class ModelError(VigilError, RuntimeError):
    http_status = 503
    exit_code = 6


class DataError(VigilError, ValueError):
    http_status = 422
    exit_code = 7
