"""Bearer tokens: the API's admin token (mutating endpoints) and the Alertmanager webhook's, kept in
``$VIGIL_HOME`` when not configured, and the optional read token of the read endpoints."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from vigil.config import Settings

TOKEN_FILE = "api_token"
WEBHOOK_TOKEN_FILE = "webhook_token"


def resolve_token(settings: Settings) -> str:
    """``settings.api_token``, else the one in ``$VIGIL_HOME/api_token`` (created 0600 on first use)."""
    return settings.api_token or _file_token(settings.home / TOKEN_FILE)


def resolve_read_token(settings: Settings) -> str:
    """``settings.api_read_token``; empty means the read endpoints are open, so none is generated:
    a generated one would lock out every reader (Grafana, scripts) of an upgraded installation."""
    return settings.api_read_token


def read_headers(settings: Settings) -> dict[str, str]:
    """The ``Authorization`` header a client of the read endpoints sends (none when they are open)."""
    token = resolve_read_token(settings)
    return {"Authorization": f"Bearer {token}"} if token else {}


def webhook_token_file(settings: Settings) -> Path:
    """Where Alertmanager's ``credentials_file`` for the webhook lives (created on first use, 0640 so
    an Alertmanager running in Vigil's group can read it, without a newline Go would put in the header)."""
    path = settings.home / WEBHOOK_TOKEN_FILE
    _file_token(path, mode=0o640, newline="")
    return path


def resolve_webhook_token(settings: Settings) -> str:
    """The bearer token ``POST /v1/alertmanager`` requires: ``chatops.webhook_token``, else the file's.

    A token of its own, not the API token: it sits in Alertmanager's configuration, and whoever can
    read that must not be able to promote models.
    """
    return settings.chatops.webhook_token or _file_token(webhook_token_file(settings))


def _file_token(path: Path, *, mode: int = 0o600, newline: str = "\n") -> str:
    if path.is_file():
        token = path.read_text().strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + newline)
    return token
