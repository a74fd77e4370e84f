"""A small client for the Prometheus HTTP API (Prometheus, VictoriaMetrics, Thanos, Mimir, ...): the
one every part of Vigil uses (collection, polling, evidence, validation).

Queries that contain label values from scrape targets must be built with
:func:`vigil.promql.selector` (or :func:`vigil.promql.string_literal`): a label value is
untrusted text.

Errors: an unreachable server or a 5xx raises :class:`~vigil.errors.UpstreamUnavailable`; a query
the server rejects raises :class:`~vigil.errors.BadRequest` carrying the server's message.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests

from vigil.errors import BadRequest, UpstreamUnavailable
from vigil.promql import check_label_name

# Prometheus refuses a range query that would return more than this many points per series.
MAX_POINTS_PER_SERIES = 11_000


@dataclass
class RangeSeries:
    """One series from a range query: timestamps in unix seconds, float64 values (NaN kept)."""

    labels: dict[str, str]
    timestamps: np.ndarray
    values: np.ndarray

    @property
    def name(self) -> str:
        return self.labels.get("__name__", "")

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.labels.items()))


@dataclass
class InstantSample:
    labels: dict[str, str]
    timestamp: float
    value: float


@dataclass
class PromClient:
    """Prometheus HTTP API client; ``base_url`` like ``http://127.0.0.1:19090``."""

    base_url: str
    timeout_s: float = 30.0
    session: requests.Session = field(default_factory=requests.Session)
    max_points: int = MAX_POINTS_PER_SERIES

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")

    # -- raw API ------------------------------------------------------------------------------
    def api(self, path: str, params: Mapping[str, Any] | Sequence[tuple[str, Any]], *, method: str = "POST") -> Any:
        """Call ``/api/v1/<path>`` and return its ``data``; errors become Vigil errors.

        Queries use POST, which keeps long selectors out of URLs (and out of proxy access logs).
        """
        url = f"{self.base_url}/api/v1/{path}"
        try:
            if method == "GET":
                resp = self.session.get(url, params=params, timeout=self.timeout_s)
            else:
                resp = self.session.post(url, data=params, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise UpstreamUnavailable(
                f"Prometheus API at {self.base_url} is unreachable ({type(exc).__name__})",
                hint="is it running? check prometheus_url / vigil status",
            ) from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 500 or (resp.status_code in (404, 405) and not isinstance(body, dict)):
            raise UpstreamUnavailable(f"Prometheus API at {self.base_url} answered HTTP {resp.status_code} on {path}")
        if not isinstance(body, dict) or body.get("status") != "success":
            msg = body.get("error", resp.text[:200]) if isinstance(body, dict) else resp.text[:200]
            raise BadRequest(f"Prometheus rejected {path}: {' '.join(str(msg).split())}")
        return body.get("data")

    def buildinfo(self) -> dict[str, Any]:
        try:
            return dict(self.api("status/buildinfo", {}, method="GET"))
        except (BadRequest, UpstreamUnavailable):
            return {}

    # -- queries ------------------------------------------------------------------------------
    def query(self, expr: str, time: float | None = None) -> list[InstantSample]:
        params: dict[str, Any] = {"query": expr}
        if time is not None:
            params["time"] = _fmt_ts(time)
        data = self.api("query", params)
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            return [InstantSample({}, float(result[0]), float(result[1]))]
        if kind != "vector":
            raise BadRequest(f"query must return an instant vector, got a {kind}: {expr[:80]}")
        return [InstantSample(r.get("metric", {}), float(r["value"][0]), float(r["value"][1])) for r in result]

    def scalar(self, expr: str, time: float | None = None) -> float | None:
        """The first value of ``expr``; ``None`` when it returns nothing or not a finite number."""
        samples = self.query(expr, time)
        return samples[0].value if samples and math.isfinite(samples[0].value) else None

    def query_range(
        self, expr: str, start: float, end: float, step: float, *, chunk_s: float | None = None
    ) -> list[RangeSeries]:
        """Range query over ``[start, end]`` split into chunks under the per-series point limit."""
        merged: dict[tuple[tuple[str, str], ...], list[RangeSeries]] = {}
        for series in self.iter_query_range(expr, start, end, step, chunk_s=chunk_s):
            merged.setdefault(series.key, []).append(series)
        out = []
        for parts in merged.values():
            if len(parts) == 1:
                out.append(parts[0])
            else:
                out.append(
                    RangeSeries(
                        parts[0].labels,
                        np.concatenate([p.timestamps for p in parts]),
                        np.concatenate([p.values for p in parts]),
                    )
                )
        return out

    def iter_query_range(
        self, expr: str, start: float, end: float, step: float, *, chunk_s: float | None = None
    ) -> Iterator[RangeSeries]:
        """Yield each chunk's series as it arrives, so a caller can bound memory."""
        for lo, hi in chunk_bounds(start, end, step, self.max_points, chunk_s):
            yield from self._range_once(expr, lo, hi, step)

    def _range_once(self, expr: str, start: float, end: float, step: float) -> list[RangeSeries]:
        data = self.api(
            "query_range", {"query": expr, "start": _fmt_ts(start), "end": _fmt_ts(end), "step": _fmt_step(step)}
        )
        if data.get("resultType") != "matrix":
            raise BadRequest(f"range query must return a matrix, got {data.get('resultType')}: {expr[:80]}")
        results = [r for r in data["result"] if r.get("values")]
        if not results:
            return []
        # One array per response, not two per series: a Prometheus answers thousands of series per
        # collection cycle, and per-series numpy calls were most of the collector's CPU burst.
        pairs = [p for r in results for p in r["values"]]
        ts = np.fromiter((p[0] for p in pairs), dtype=np.float64, count=len(pairs))
        values = np.array([p[1] for p in pairs], dtype=np.float64)  # parses "NaN", "+Inf"
        bounds = np.cumsum([len(r["values"]) for r in results])[:-1]
        return [
            RangeSeries(r.get("metric", {}), t, v)
            for r, t, v in zip(results, np.split(ts, bounds), np.split(values, bounds), strict=True)
        ]

    # -- metadata -----------------------------------------------------------------------------
    def series(self, match: Sequence[str], start: float | None = None, end: float | None = None) -> list[dict]:
        params: list[tuple[str, Any]] = [("match[]", m) for m in match]
        if start is not None:
            params.append(("start", _fmt_ts(start)))
        if end is not None:
            params.append(("end", _fmt_ts(end)))
        return list(self.api("series", params))

    def labels(self, match: Sequence[str] = ()) -> list[str]:
        return list(self.api("labels", [("match[]", m) for m in match]))

    def label_values(self, name: str, match: Sequence[str] = ()) -> list[str]:
        check_label_name(name)
        url = f"{self.base_url}/api/v1/label/{name}/values"
        try:
            resp = self.session.get(url, params=[("match[]", m) for m in match], timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise UpstreamUnavailable(
                f"Prometheus API at {self.base_url} is unreachable ({type(exc).__name__})"
            ) from None
        if resp.status_code != 200:
            raise UpstreamUnavailable(f"Prometheus API at {self.base_url} answered HTTP {resp.status_code}")
        return list(resp.json().get("data", []))

    def targets(self) -> list[dict]:
        """Active scrape targets (Prometheus; VictoriaMetrics when it scrapes itself)."""
        url = f"{self.base_url}/api/v1/targets"
        try:
            resp = self.session.get(url, params={"state": "active"}, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise UpstreamUnavailable(
                f"Prometheus API at {self.base_url} is unreachable ({type(exc).__name__})"
            ) from None
        if resp.status_code != 200:
            return []
        return list(resp.json().get("data", {}).get("activeTargets", []))


def chunk_bounds(
    start: float, end: float, step: float, max_points: int = MAX_POINTS_PER_SERIES, chunk_s: float | None = None
) -> list[tuple[float, float]]:
    """Split ``[start, end]`` into inclusive windows on the step grid that starts at ``start``.

    Each window holds at most ``max_points`` steps (and spans at most ``chunk_s``); the next window
    starts one step after the previous one ends, so no step is queried twice or skipped.
    """
    if step <= 0 or not math.isfinite(step):
        raise BadRequest(f"step must be a positive number of seconds, got {step}")
    if end < start:
        return []
    per_chunk = max_points - 1
    if chunk_s is not None:
        per_chunk = max(0, min(per_chunk, int(chunk_s // step) - 1))
    # Integer milliseconds: float step arithmetic would drift off the grid over many chunks.
    start_ms, step_ms = round(start * 1000), round(step * 1000)
    n_steps = (round(end * 1000) - start_ms) // step_ms
    out = []
    i = 0
    while i <= n_steps:
        j = min(n_steps, i + per_chunk)
        out.append(((start_ms + i * step_ms) / 1000, (start_ms + j * step_ms) / 1000))
        i = j + 1
    return out


def _fmt_ts(ts: float) -> str:
    return f"{ts:.3f}"


def _fmt_step(step: float) -> str:
    return f"{step:.3f}".rstrip("0").rstrip(".") + "s"
