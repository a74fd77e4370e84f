"""Bearer-token check for the endpoints that change what the service does (reload, promote)."""

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


def require_token(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not bearer_matches(request.headers.get("Authorization", ""), current_app.extensions["vigil"].token):
            raise Unauthorized(
                "a valid bearer token is required", hint=f"send Authorization: Bearer <$VIGIL_HOME/{TOKEN_FILE}>"
            )
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
