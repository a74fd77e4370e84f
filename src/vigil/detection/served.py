"""What the running detection service lists, read from another process (the retrainer, the campaign):
its incidents (``GET /v1/incidents``) and its maintenance windows (``GET /v1/maintenance``). Each
answers ``None`` when the service cannot say, so a caller can tell "none" from "unknown"."""

from __future__ import annotations

from typing import Any

import requests

from vigil.config import Settings
from vigil.tokens import read_headers


def _listed(settings: Settings, path: str, key: str, timeout_s: float) -> list[dict[str, Any]] | None:
    try:
        resp = requests.get(f"{settings.url('vigil')}{path}", headers=read_headers(settings), timeout=timeout_s)
        resp.raise_for_status()
        return [item for item in resp.json()[key] if isinstance(item, dict)]
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None


def served_incidents(settings: Settings, timeout_s: float = 5.0) -> list[dict[str, Any]] | None:
    return _listed(settings, "/v1/incidents", "incidents", timeout_s)


def served_maintenance(settings: Settings, timeout_s: float = 5.0) -> list[dict[str, Any]] | None:
    return _listed(settings, "/v1/maintenance", "windows", timeout_s)
