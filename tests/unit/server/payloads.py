"""remote_write bodies built from real SMD rows (one series per signal, ``instance`` = entity)."""

from __future__ import annotations

import numpy as np

from tests.unit.detection.realmodel import T0, columns, smd_rows
from vigil.ingest.remote_write import encode_write_request

T0_MS = int(T0 * 1000)
HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "vigil-tests",
}


def step_series(entity: str, steps: range, split: str = "test", step_ms: int = 1000) -> list:
    rows = smd_rows(split)
    out = []
    for j, name in enumerate(columns()):
        samples = [(T0_MS + k * step_ms, float(rows[k, j])) for k in steps]
        out.append(({"__name__": name, "instance": entity, "job": "smd"}, samples))
    return out


def body(entity: str, steps: range, **kw: object) -> bytes:
    return encode_write_request(step_series(entity, steps, **kw))  # type: ignore[arg-type]


def values(split: str, k: int) -> dict[str, float]:
    return dict(zip(columns(), np.asarray(smd_rows(split)[k], dtype=float).tolist(), strict=True))
