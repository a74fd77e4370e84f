"""Bearer-token roles: the admin token for the endpoints that change what the service does (reload,
promote), the read token (when one is set) for the endpoints that show scores and models.

Each token is accepted as ``Authorization: Bearer <token>`` or as the password of HTTP basic auth:
with ``basic_auth_users`` in the web config every request already carries a Basic header (see
:mod:`vigil.server.webconfig`), and one header cannot carry both, so there the token is the
password of a user whose bcrypt hash is that token's.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, request

from vigil.errors import Unauthorized
from vigil.tokens import TOKEN_FILE

F = TypeVar("F", bound=Callable[..., Any])


def bearer_matches(header: str, expected: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <expected>``.

    compare_digest, so the time taken does not reveal how much of the token was right; on bytes,
    because its str form raises on non-ASCII text (a 500 where a 401 is due).
    """
    scheme, _, given = header.partition(" ")
    return (
        scheme.lower() == "bearer"
        and bool(given)
        and hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), expected.encode())
    )


def credentials_match(header: str, expected: str) -> bool:
    """Whether an ``Authorization`` header carries ``expected`` as a bearer token or as the password
    of HTTP basic auth (any user name): Alertmanager's ``http_config`` can send either.
    """
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "basic":
        return bearer_matches(header, expected)
    try:
        decoded = base64.b64decode(given.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    _user, colon, password = decoded.partition(b":")
    return bool(colon) and hmac.compare_digest(password, expected.encode())


def matches_any(header: str, tokens: tuple[str, ...]) -> bool:
    """Whether the header carries one of ``tokens`` (see :func:`credentials_match`); every token is
    compared, so the time taken does not tell which one came close."""
    matched = [credentials_match(header, token) for token in tokens]
    return any(matched)


def require_token(view: F) -> F:
    """The admin role: ``api_token`` (else ``$VIGIL_HOME/api_token``)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not credentials_match(request.headers.get("Authorization", ""), current_app.extensions["vigil"].token):
            raise Unauthorized(
                "a valid bearer token is required",
                hint=f"send Authorization: Bearer <$VIGIL_HOME/{TOKEN_FILE}>, or it as the basic auth password",
            )
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def require_read_token(view: F) -> F:
    """The read role: with ``api_read_token`` set, it or the admin token; without, open to anyone who
    reaches the port (the loopback default)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = current_app.extensions["vigil"]
        if ctx.read_token and not matches_any(request.headers.get("Authorization", ""), (ctx.read_token, ctx.token)):
            raise Unauthorized(
                "a valid bearer token is required",
                hint="send Authorization: Bearer <api_read_token or the admin token>, or it as the basic auth password",
            )
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
