"""Domain signals derived from named Prometheus series: disk, network and application health.

They are found by metric name (node_exporter and prometheus-client conventions) and computed row by
row from signals that are already per-second rates, so the batch and incremental paths share the
exact same arithmetic. A ratio whose denominator is zero or missing is NaN (unknown), never zero.
Series that SMD/ASD/NAB do not name simply produce no derived signal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_LABELS = re.compile(r"\{(.*)\}")


def _base(name: str) -> str:
    return name.split("{", 1)[0]


def _label(name: str, key: str) -> str | None:
    m = _LABELS.search(name)
    if not m:
        return None
    for part in m.group(1).split(","):
        k, _, v = part.partition("=")
        if k.strip() == key:
            return v.strip().strip('"')
    return None


@dataclass(frozen=True)
class DerivedSpec:
    """One derived signal: ``op`` over the input columns (``num`` / ``den`` split for ratios)."""

    name: str
    op: str  # "sum", "max", "ratio", "quantile"
    num: tuple[int, ...]
    den: tuple[int, ...] = ()
    q: float = 0.0
    bounds: tuple[float, ...] = ()  # histogram bucket upper bounds, aligned with ``num``

    @property
    def inputs(self) -> tuple[int, ...]:
        return self.num + self.den

    def compute(self, rows: np.ndarray) -> np.ndarray:
        """Value for every row of ``rows`` ``(N, S)``; NaN where an input is missing."""
        with np.errstate(invalid="ignore", divide="ignore"):
            a = rows[:, list(self.num)]
            if self.op == "sum":
                return a.sum(axis=1)
            if self.op == "max":
                return a.max(axis=1)
            if self.op == "ratio":
                d = rows[:, list(self.den)].sum(axis=1)
                return np.where(d > 0, a.sum(axis=1) / np.where(d > 0, d, 1.0), np.nan)
            if self.op == "quantile":
                return _histogram_quantile(self.q, np.asarray(self.bounds), a)
        raise ValueError(f"unknown derived op {self.op}")


def _histogram_quantile(q: float, bounds: np.ndarray, cum_rates: np.ndarray) -> np.ndarray:
    """PromQL ``histogram_quantile`` over cumulative bucket rates (linear inside a bucket)."""
    out = np.full(len(cum_rates), np.nan)
    finite_top = bounds[np.isfinite(bounds)].max() if np.isfinite(bounds).any() else np.nan
    for r, row in enumerate(cum_rates):
        if np.isnan(row).any() or row[-1] <= 0:
            continue
        rank = q * row[-1]
        b = int(np.searchsorted(row, rank, side="left"))
        if not np.isfinite(bounds[b]):
            out[r] = finite_top
            continue
        lo_bound = 0.0 if b == 0 else bounds[b - 1]
        lo_count = 0.0 if b == 0 else row[b - 1]
        width = row[b] - lo_count
        out[r] = lo_bound + (bounds[b] - lo_bound) * ((rank - lo_count) / width if width > 0 else 1.0)
    return out


def _find(names: Sequence[str], pattern: str) -> tuple[int, ...]:
    rx = re.compile(pattern)
    return tuple(i for i, n in enumerate(names) if rx.fullmatch(_base(n)))


def find_derived(names: Sequence[str]) -> list[DerivedSpec]:
    """All derived signals whose inputs are among ``names``."""
    specs: list[DerivedSpec] = []

    def add_sum(name: str, *patterns: str, op: str = "sum") -> None:
        idx = tuple(i for p in patterns for i in _find(names, p))
        if idx:
            specs.append(DerivedSpec(name, op, idx))

    def add_ratio(name: str, num: tuple[int, ...], den: tuple[int, ...]) -> None:
        if num and den:
            specs.append(DerivedSpec(name, "ratio", num, den))

    add_sum("disk_throughput_bytes", r"node_disk_read_bytes_total", r"node_disk_written_bytes_total")
    add_sum("disk_iops", r"node_disk_reads_completed_total", r"node_disk_writes_completed_total")
    add_sum("disk_utilisation", r"node_disk_io_time_seconds_total", op="max")
    add_sum("disk_queue_length", r"node_disk_io_time_weighted_seconds_total")
    add_ratio(
        "disk_latency_seconds",
        _find(names, r"node_disk_(read|write)_time_seconds_total"),
        _find(names, r"node_disk_(reads|writes)_completed_total"),
    )
    add_sum("net_throughput_bytes", r"node_network_(receive|transmit)_bytes_total")
    add_sum("net_errors", r"node_network_(receive|transmit)_errs_total")
    add_sum("net_drops", r"node_network_(receive|transmit)_drop_total")
    add_ratio(
        "tcp_retrans_ratio", _find(names, r"node_netstat_Tcp_RetransSegs"), _find(names, r"node_netstat_Tcp_OutSegs")
    )

    # Application: request counters with a status/code label give an error ratio.
    req = [i for i, n in enumerate(names) if re.fullmatch(r".*_requests_total", _base(n))]
    status = {i: _label(names[i], "status") or _label(names[i], "code") for i in req}
    errors = tuple(i for i in req if (status[i] or "").startswith("5"))
    add_ratio("app_error_ratio", errors, tuple(req))

    # Application latency: histogram buckets of one family (summed over other labels per bound).
    families: dict[str, dict[float, list[int]]] = {}
    for i, n in enumerate(names):
        base = _base(n)
        le = _label(n, "le")
        if base.endswith("_bucket") and le is not None:
            bound = float("inf") if le in {"+Inf", "inf", "Inf"} else float(le)
            families.setdefault(base[: -len("_bucket")], {}).setdefault(bound, []).append(i)
    for family, by_bound in sorted(families.items()):
        bounds = sorted(by_bound)
        # One column per bound is the common case; with several series per bound, use the first
        # one consistently so the cumulative counts stay monotone.
        cols = tuple(by_bound[b][0] for b in bounds)
        for q in (0.5, 0.9, 0.99):
            specs.append(DerivedSpec(f"{family}_p{int(round(q * 100))}", "quantile", cols, q=q, bounds=tuple(bounds)))
    return specs


_ROLES = {
    "cpu": r"node_cpu_seconds_total|.*cpu.*",
    "memory": r"node_memory_.*|.*mem.*",
    "requests": r".*_requests_total|.*request_count.*",
}


def role_pairs(names: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs whose correlation operators watch by habit: CPU vs memory, CPU vs request rate."""
    roles = {r: _find(names, p)[:1] for r, p in _ROLES.items()}
    pairs = []
    for a, b in (("cpu", "memory"), ("cpu", "requests")):
        if roles[a] and roles[b] and roles[a][0] != roles[b][0]:
            pairs.append((roles[a][0], roles[b][0]))
    return pairs
