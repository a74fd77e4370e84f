"""The few Prometheus HTTP API calls evidence gathering needs (instant and range queries)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import requests

from vigil.errors import BadRequest, UpstreamUnavailable


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]


class PrometheusAPI:
    """``/api/v1/query`` and ``/api/v1/query_range`` of any Prometheus-compatible server."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = session or requests.Session()

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            resp = self._session.get(f"{self.base_url}{path}", params=params, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise UpstreamUnavailable(
                f"Prometheus at {self.base_url} is unreachable: {type(exc).__name__}", hint="check prometheus_url"
            ) from exc
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code in (400, 422):
            raise BadRequest(f"Prometheus rejected the query: {body.get('error', resp.text[:200])}")
        if resp.status_code != 200 or body.get("status") != "success":
            raise UpstreamUnavailable(f"Prometheus answered {resp.status_code}: {body.get('error', resp.text[:200])}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params)
        if data["resultType"] == "scalar":
            return [Sample({}, _float(data["result"][1]))]
        if data["resultType"] != "vector":
            return []
        return [Sample(dict(r["metric"]), _float(r["value"][1])) for r in data["result"]]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{max(step, 0.001):.3f}"}
        data = self._get("/api/v1/query_range", params)
        return [
            Series(dict(r["metric"]), [(float(t), _float(v)) for t, v in r["values"]]) for r in data.get("result", [])
        ]

    def scalar(self, expr: str, at: float | None = None) -> float | None:
        """The single value of ``expr``; ``None`` when it returns nothing or not a number."""
        samples = self.query(expr, at)
        if not samples:
            return None
        value = samples[0].value
        return value if math.isfinite(value) else None

    def now(self) -> float:
        return time.time()


def _float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan
