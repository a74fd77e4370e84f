"""Bearer-token check for the endpoints that change what the service does (reload, promote)."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, request

from vigil.errors import Unauthorized
from vigil.tokens import TOKEN_FILE

F = TypeVar("F", bound=Callable[..., Any])


def require_token(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        expected: str = current_app.extensions["vigil"].token
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        # compare_digest: the comparison time must not reveal how much of the token was right.
        # compare_digest takes bytes of any content; its str form refuses non-ASCII with a TypeError.
        if (
            scheme.lower() != "bearer"
            or not given
            or not hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), expected.encode())
        ):
            raise Unauthorized(
                "a valid bearer token is required", hint=f"send Authorization: Bearer <$VIGIL_HOME/{TOKEN_FILE}>"
            )
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
