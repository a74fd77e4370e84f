"""Bearer-token check for the endpoints that change what the service does (reload, promote)."""

from __future__ import annotations

import functools
import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import current_app, request

from vigil.config import Settings
from vigil.errors import Unauthorized

F = TypeVar("F", bound=Callable[..., Any])
TOKEN_FILE = "api_token"


def resolve_token(settings: Settings) -> str:
    """``settings.api_token``, else the one in ``$VIGIL_HOME/api_token`` (created 0600 on first use)."""
    if settings.api_token:
        return settings.api_token
    path: Path = settings.home / TOKEN_FILE
    if path.is_file():
        token = path.read_text().strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


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
