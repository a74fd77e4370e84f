"""A small client for the Alertmanager HTTP API v2 (alerts and silences).

Only the calls Vigil needs. Network failures and 5xx answers become
:class:`~vigil.errors.UpstreamUnavailable` (worth retrying later); 4xx answers become
:class:`~vigil.errors.BadRequest` (retrying the same payload cannot help).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from vigil.errors import BadRequest, NotFound, UpstreamUnavailable

MAX_SILENCE_S = 7 * 86400  # a forgotten week-long silence is already bad enough


def rfc3339(ts: float) -> str:
    """Alertmanager wants RFC 3339 with an explicit offset."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def to_api(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}


class AlertmanagerClient:
    """Alertmanager API v2.

    Parameters
    ----------
    base_url : str
        e.g. ``http://127.0.0.1:19093`` (no ``/api/v2``).
    timeout_s : float
        Per request; keep it short, the sender queues and retries.

    Examples
    --------
    >>> client = AlertmanagerClient("http://127.0.0.1:9")
    >>> client.api
    'http://127.0.0.1:9/api/v2'
    """

    def __init__(self, base_url: str, *, timeout_s: float = 5.0, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api = f"{self.base_url}/api/v2"
        self.timeout_s = timeout_s
        self._session = session or requests.Session()

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.api}{path}"
        try:
            resp = self._session.request(method, url, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise UpstreamUnavailable(
                f"Alertmanager at {self.base_url} is unreachable: {type(exc).__name__}",
                hint="is it running? check alertmanager_url",
            ) from exc
        if resp.status_code >= 500:
            raise UpstreamUnavailable(f"Alertmanager answered {resp.status_code} to {method} {path}: {resp.text[:200]}")
        if resp.status_code == 404 and method == "DELETE":
            raise NotFound(f"Alertmanager has no {path}")
        if resp.status_code >= 400:
            raise BadRequest(f"Alertmanager rejected {method} {path} ({resp.status_code}): {resp.text[:300]}")
        return resp

    def ready(self) -> bool:
        try:
            return self._session.get(f"{self.base_url}/-/ready", timeout=self.timeout_s).status_code == 200
        except requests.RequestException:
            return False

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        if alerts:
            self._request("POST", "/alerts", json=list(alerts))

    def get_alerts(
        self, *, filters: Sequence[str] = (), active: bool = True, silenced: bool = True, inhibited: bool = True
    ) -> list[dict[str, Any]]:
        """``filters`` are matcher strings such as ``entity="db-1"`` (use :func:`matcher_string`)."""
        params: list[tuple[str, str]] = [("filter", f) for f in filters]
        params += [("active", str(active).lower()), ("silenced", str(silenced).lower())]
        params.append(("inhibited", str(inhibited).lower()))
        return list(self._request("GET", "/alerts", params=params).json())

    def create_silence(
        self,
        matchers: Sequence[Matcher],
        *,
        duration_s: float,
        created_by: str,
        comment: str,
        now: float | None = None,
    ) -> str:
        if not matchers:
            raise BadRequest("a silence needs at least one matcher")
        if not 0 < duration_s <= MAX_SILENCE_S:
            raise BadRequest("silence duration must be positive and at most 7 days")
        start = time.time() if now is None else now
        body = {
            "matchers": [m.to_api() for m in matchers],
            "startsAt": rfc3339(start),
            "endsAt": rfc3339(start + duration_s),
            "createdBy": created_by[:100] or "vigil",
            "comment": comment[:500] or "created by vigil",
        }
        return str(self._request("POST", "/silences", json=body).json()["silenceID"])

    def list_silences(self, *, filters: Sequence[str] = ()) -> list[dict[str, Any]]:
        params = [("filter", f) for f in filters]
        return list(self._request("GET", "/silences", params=params).json())

    def expire_silence(self, silence_id: str) -> None:
        if not re.fullmatch(r"[0-9a-fA-F-]{1,64}", silence_id):
            raise BadRequest(f"{silence_id[:70]!r} is not a silence id")
        self._request("DELETE", f"/silence/{silence_id}")


def matcher_string(name: str, value: str) -> str:
    """An Alertmanager filter ``name="value"`` with the value quoted like a Go string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{name}="{escaped}"'
