"""The catalog of raw input signals per entity, in batch (archive / Prometheus) and streaming form.

An *entity* is what one model watches: a host (node_exporter series, keyed by ``instance``) or a
service (the demo app's series, keyed by ``service``, else ``job``). Each :class:`Signal` has

* a PromQL expression (:meth:`Signal.promql`) for dashboards and ad-hoc queries, and
* a computation from raw series (:attr:`Signal.expr`) that both paths below share.

Train/serve skew is the failure this module exists to prevent, so both the batch path
(:func:`load_entity_frame`, from the archive or from Prometheus range queries) and the streaming
path (:class:`SignalAssembler`, from remote_write samples) compute signals the same way: series are
sampled on the step grid the way a Prometheus range query does (the value at step ``t`` is the last
sample at or before ``t``, within a 5-minute lookback, cut by stale markers), counters become
sample-to-sample rates with :mod:`vigil.features.counters`, and the same array code aggregates
them. Fed the same samples, the two paths give identical values (tested).

Demo-app metric names (the contract with ``vigil.demo``, see docs/data.md):
``demo_http_requests_total{code,...}`` (counter), ``demo_http_request_duration_seconds`` (histogram),
``demo_http_in_flight_requests`` (gauge; ``demo_http_requests_in_flight`` is accepted as an alias).
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vigil.errors import ConfigError, DataError, NotFound
from vigil.features.counters import CounterRate, counter_rate, is_stale_marker
from vigil.prometheus import PromClient
from vigil.promql import Matcher, promql_escape, regex_literal, selector

LOOKBACK_S = 300.0  # Prometheus' default lookback delta: how long a sample stays the current value
SERVICE_LABELS = ("service", "job")  # the first one present names a service entity
HOST_LABEL = "instance"


# -- expression tree ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Input:
    """A set of raw series: one metric (or aliases of one), label filters, counter or not."""

    metrics: tuple[str, ...]
    matchers: tuple[Matcher, ...] = ()
    counter: bool = False

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        return name in self.metrics and all(_match(labels.get(k, ""), op, v) for k, op, v in self.matchers)


def _match(actual: str, op: str, expected: str) -> bool:
    if op == "=":
        return actual == expected
    if op == "!=":
        return actual != expected
    hit = re.fullmatch(expected, actual) is not None
    return hit if op == "=~" else not hit


@dataclass(frozen=True)
class Agg:
    """``sum``/``max``/``min`` across the input's series (NaN series skipped, all-NaN gives NaN).

    ``absent_zero``: no matching series at all means zero, e.g. no ``code="5.."`` series yet
    because no request has failed (PromQL: ``... or vector(0)``). A series that exists but has
    no value at a step stays unknown (NaN).
    """

    op: str
    input: Input
    absent_zero: bool = False


@dataclass(frozen=True)
class PairRatio:
    """Per label set ``num / den`` (e.g. filesystem avail / size), then ``min`` or ``max`` across."""

    num: Input
    den: Input
    op: str = "min"


@dataclass(frozen=True)
class Quantile:
    """``histogram_quantile(q, sum by (le) (rate(bucket)))`` with Prometheus' interpolation."""

    q: float
    buckets: Input


@dataclass(frozen=True)
class Arith:
    """``a <op> b`` element-wise; ``op`` one of ``+ - * /``; a float operand is a constant."""

    op: str
    a: Expr
    b: Expr


Expr = Agg | PairRatio | Quantile | Arith | float


def _inputs(expr: Expr) -> list[Input]:
    if isinstance(expr, Agg):
        return [expr.input]
    if isinstance(expr, PairRatio):
        return [expr.num, expr.den]
    if isinstance(expr, Quantile):
        return [expr.buckets]
    if isinstance(expr, Arith):
        return _inputs(expr.a) + _inputs(expr.b)
    return []


@dataclass(frozen=True)
class Signal:
    name: str
    kind: str  # "host" or "service"
    expr: Expr
    unit: str = ""
    help: str = ""
    resolution: float | None = None  # None: the unit's default (UNIT_RESOLUTION)

    @property
    def floor(self) -> float:
        """The smallest change of this signal an operator would act on; models never scale finer."""
        return self.resolution if self.resolution is not None else UNIT_RESOLUTION.get(self.unit, 0.0)

    @property
    def inputs(self) -> list[Input]:
        return _inputs(self.expr)

    def promql(self, entity: Entity | None = None, range_: str = "1m") -> str:
        """The equivalent PromQL (generated from :attr:`expr`, so the two cannot drift apart).

        PromQL's ``rate`` averages over ``range_`` where the streaming form takes sample-to-sample
        rates, so the two agree on trends, not to the last digit.
        """
        extra = [entity.matcher()] if entity is not None else []
        return to_promql(self.expr, extra, range_)


def to_promql(expr: Expr, extra: Sequence[Matcher] = (), range_: str = "1m") -> str:
    if isinstance(expr, float | int):
        return repr(float(expr))
    if isinstance(expr, Agg):
        agg = f"{expr.op}({_vector(expr.input, extra, range_)})"
        return f"({agg} or vector(0))" if expr.absent_zero else agg
    if isinstance(expr, Arith):
        return f"({to_promql(expr.a, extra, range_)} {expr.op} {to_promql(expr.b, extra, range_)})"
    if isinstance(expr, PairRatio):
        num, den = _vector(expr.num, extra, range_), _vector(expr.den, extra, range_)
        return f"{expr.op}({num} / {den})"
    if isinstance(expr, Quantile):
        return f"histogram_quantile({expr.q}, sum by (le) ({_vector(expr.buckets, extra, range_)}))"
    raise TypeError(f"unknown expression {expr!r}")


def _vector(inp: Input, extra: Sequence[Matcher], range_: str) -> str:
    parts = []
    for metric in inp.metrics:
        sel = selector(metric, [*inp.matchers, *extra])
        parts.append(f"rate({sel}[{range_}])" if inp.counter else sel)
    return " or ".join(parts)


def _in(metric: str | tuple[str, ...], *matchers: Matcher, counter: bool = False) -> Input:
    names = (metric,) if isinstance(metric, str) else metric
    return Input(names, tuple(matchers), counter)


def _c(metric: str | tuple[str, ...], *matchers: Matcher) -> Input:
    return _in(metric, *matchers, counter=True)


def _sum(i: Input) -> Agg:
    return Agg("sum", i)


def _div(a: Expr, b: Expr) -> Arith:
    return Arith("/", a, b)


_CPU = "node_cpu_seconds_total"
_REQ = "demo_http_requests_total"
_LAT = "demo_http_request_duration_seconds_bucket"
_IN_FLIGHT = ("demo_http_in_flight_requests", "demo_http_requests_in_flight")
_DISK_DEV = ("device", "!~", "dm-.*|md.*|loop.*|ram.*|zram.*")  # partitions of real disks only, no double counting

# Per unit, the change below which a moving signal is noise to an operator: 2 points of CPU or memory
# use, 5 ms of latency, 1 MiB/s of I/O, one process or request per second. Anomaly models scale
# features no finer than this (AnomalyPipeline.signal_floors), so a steady signal's small level shift
# (Vigil loading its own models: +3 points of memory) is not read as a 15-sigma event.
UNIT_RESOLUTION: dict[str, float] = {
    "ratio": 0.02,
    "bytes": 64 * 2**20,
    "bytes/s": 2**20,
    "pages/s": 10.0,
    "1/s": 1.0,
    "seconds": 0.005,
    "": 1.0,
}

HOST_SIGNALS: tuple[Signal, ...] = (
    Signal(
        "cpu_busy",
        "host",
        # Time the hypervisor gave other tenants is not this host's work: it has a signal of its own
        # (cpu_steal); counted here, a noisy neighbour's burst read as CPU saturation and paged.
        Arith("-", 1.0, _div(_sum(_c(_CPU, ("mode", "=~", "idle|steal"))), _sum(_c(_CPU)))),
        "ratio",
        "Fraction of CPU time this host spent working (neither idle nor stolen), all CPUs",
    ),
    Signal(
        "cpu_iowait",
        "host",
        _div(_sum(_c(_CPU, ("mode", "=", "iowait"))), _sum(_c(_CPU))),
        "ratio",
        "Fraction of CPU time waiting for I/O",
    ),
    Signal(
        "cpu_steal",
        "host",
        _div(_sum(_c(_CPU, ("mode", "=", "steal"))), _sum(_c(_CPU))),
        "ratio",
        "Fraction of CPU time stolen by the hypervisor",
    ),
    Signal(
        "memory_used_ratio",
        "host",
        Arith("-", 1.0, _div(_sum(_in("node_memory_MemAvailable_bytes")), _sum(_in("node_memory_MemTotal_bytes")))),
        "ratio",
        "Memory in use (not available) over total",
    ),
    Signal(
        "swap_used_bytes",
        "host",
        Arith("-", _sum(_in("node_memory_SwapTotal_bytes")), _sum(_in("node_memory_SwapFree_bytes"))),
        "bytes",
        "Swap in use (0 on hosts without swap)",
    ),
    Signal(
        "swap_io_pages_per_s",
        "host",
        Arith("+", _sum(_c("node_vmstat_pswpin")), _sum(_c("node_vmstat_pswpout"))),
        "pages/s",
        "Pages swapped in and out",
    ),
    Signal("load1", "host", _sum(_in("node_load1")), "", "1-minute load average"),
    Signal("procs_running", "host", _sum(_in("node_procs_running")), "", "Runnable processes"),
    Signal(
        "procs_blocked",
        "host",
        _sum(_in("node_procs_blocked")),
        "",
        "Processes blocked on I/O",
    ),
    Signal(
        "context_switches_per_s",
        "host",
        _sum(_c("node_context_switches_total")),
        "1/s",
        "Context switches",
        resolution=500.0,
    ),
    Signal(
        "disk_read_bytes_per_s",
        "host",
        _sum(_c("node_disk_read_bytes_total", _DISK_DEV)),
        "bytes/s",
        "Bytes read from disks",
    ),
    Signal(
        "disk_write_bytes_per_s",
        "host",
        _sum(_c("node_disk_written_bytes_total", _DISK_DEV)),
        "bytes/s",
        "Bytes written to disks",
    ),
    Signal(
        "disk_iops",
        "host",
        Arith(
            "+",
            _sum(_c("node_disk_reads_completed_total", _DISK_DEV)),
            _sum(_c("node_disk_writes_completed_total", _DISK_DEV)),
        ),
        "1/s",
        "Read and write operations completed",
    ),
    Signal(
        "disk_io_utilisation",
        "host",
        Agg("max", _c("node_disk_io_time_seconds_total", _DISK_DEV)),
        "ratio",
        "Busiest disk's fraction of time with I/O in flight",
    ),
    Signal(
        "fs_free_ratio",
        "host",
        PairRatio(_in("node_filesystem_avail_bytes"), _in("node_filesystem_size_bytes"), "min"),
        "ratio",
        "Free space of the fullest filesystem",
    ),
    Signal(
        "net_rx_bytes_per_s",
        "host",
        _sum(_c("node_network_receive_bytes_total")),
        "bytes/s",
        "Bytes received, all interfaces",
    ),
    Signal(
        "net_tx_bytes_per_s",
        "host",
        _sum(_c("node_network_transmit_bytes_total")),
        "bytes/s",
        "Bytes sent, all interfaces",
    ),
    Signal(
        "net_rx_errors_drops_per_s",
        "host",
        Arith("+", _sum(_c("node_network_receive_errs_total")), _sum(_c("node_network_receive_drop_total"))),
        "1/s",
        "Receive errors and drops",
    ),
    Signal(
        "net_tx_errors_drops_per_s",
        "host",
        Arith("+", _sum(_c("node_network_transmit_errs_total")), _sum(_c("node_network_transmit_drop_total"))),
        "1/s",
        "Transmit errors and drops",
    ),
    Signal(
        "tcp_retransmits_per_s",
        "host",
        _sum(_c("node_netstat_Tcp_RetransSegs")),
        "1/s",
        "TCP segments retransmitted",
    ),
    Signal(
        "tcp_established",
        "host",
        _sum(_in("node_netstat_Tcp_CurrEstab")),
        "",
        "TCP connections established",
        resolution=10.0,  # a client's connection pool opening or closing is routine
    ),
    Signal(
        "pressure_cpu",
        "host",
        _sum(_c("node_pressure_cpu_waiting_seconds_total")),
        "ratio",
        "PSI: share of time some task waited for CPU (absent without PSI)",
    ),
    Signal(
        "pressure_memory",
        "host",
        _sum(_c("node_pressure_memory_waiting_seconds_total")),
        "ratio",
        "PSI: share of time some task waited for memory",
    ),
    Signal(
        "pressure_io",
        "host",
        _sum(_c("node_pressure_io_waiting_seconds_total")),
        "ratio",
        "PSI: share of time some task waited for I/O",
    ),
)

SERVICE_SIGNALS: tuple[Signal, ...] = (
    Signal(
        "request_rate",
        "service",
        _sum(_c(_REQ)),
        "1/s",
        "Requests handled",
    ),
    Signal(
        "error_ratio",
        "service",
        _div(Agg("sum", _c(_REQ, ("code", "=~", "5..")), absent_zero=True), _sum(_c(_REQ))),
        "ratio",
        "Share of requests answered 5xx (0 before any failure, NaN without traffic)",
    ),
    Signal(
        "latency_p50",
        "service",
        Quantile(0.5, _c(_LAT)),
        "seconds",
        "Median request latency",
    ),
    Signal(
        "latency_p99",
        "service",
        Quantile(0.99, _c(_LAT)),
        "seconds",
        "99th percentile request latency",
    ),
    Signal(
        "in_flight",
        "service",
        _sum(_in(_IN_FLIGHT)),
        "",
        "Requests being handled",
    ),
)

SIGNALS: dict[str, tuple[Signal, ...]] = {"host": HOST_SIGNALS, "service": SERVICE_SIGNALS}

# Practical significance (vigil.detectors.significance): per signal, the direction that can hurt and
# the smallest deviation from its usual level an operator would act on, ``max(min, ratio * usual)``.
# An alarm needs one of its attributed signals past this line as well as a surprised ensemble: a host
# at 13 % CPU instead of 9 %, or IOPS *falling*, is unusual but nobody's incident. Each fault the
# validation campaign injects, weak variants included, moves at least one signal well past it
# (docs/validation.md). Override per signal or per entity in vigil.yml (`signals:`, `entities:`).
PRACTICAL_MINIMUMS: dict[str, dict[str, float | str]] = {
    # "sustained" (rule 4, docs/alarms.md) is off by default: Vigil's own retraining holds the CPU of
    # the host it watches for half a minute or more, which a model trained before it would page on.
    "cpu_busy": {"direction": "up", "min": 0.20},
    "cpu_iowait": {"direction": "up", "min": 0.10},
    "cpu_steal": {"direction": "up", "min": 0.25},  # other tenants of the hypervisor, not this host's load
    # "range": levels that never burst, where leaving the training range by the minimum alarms on its own.
    "memory_used_ratio": {"direction": "up", "min": 0.10, "range": True},
    "swap_used_bytes": {"direction": "up", "min": 256 * 2**20, "range": True},
    "swap_io_pages_per_s": {"direction": "up", "min": 100.0},
    "load1": {"direction": "up", "min": 1.0, "ratio": 1.0},
    "procs_running": {"direction": "up", "min": 2.0},
    "procs_blocked": {"direction": "up", "min": 2.0},
    "context_switches_per_s": {"direction": "up", "min": 5000.0, "ratio": 1.0},
    "disk_read_bytes_per_s": {"direction": "up", "min": 16 * 2**20, "ratio": 1.0},
    "disk_write_bytes_per_s": {"direction": "up", "min": 16 * 2**20, "ratio": 1.0},
    "disk_iops": {"direction": "up", "min": 200.0, "ratio": 1.0},
    "disk_io_utilisation": {"direction": "up", "min": 0.20},
    "fs_free_ratio": {"direction": "down", "min": 0.05, "range": True},
    "net_rx_bytes_per_s": {"direction": "both", "min": 4 * 2**20, "ratio": 1.0},
    "net_tx_bytes_per_s": {"direction": "both", "min": 4 * 2**20, "ratio": 1.0},
    "net_rx_errors_drops_per_s": {"direction": "up", "min": 10.0},
    "net_tx_errors_drops_per_s": {"direction": "up", "min": 10.0},
    "tcp_retransmits_per_s": {"direction": "up", "min": 10.0},
    "tcp_established": {"direction": "up", "min": 100.0, "ratio": 1.0},
    "pressure_cpu": {"direction": "up", "min": 0.20},
    "pressure_memory": {"direction": "up", "min": 0.10},
    "pressure_io": {"direction": "up", "min": 0.20},
    # Traffic rising is demand, not a fault; falling to a fifth of usual means clients cannot reach it.
    "request_rate": {"direction": "down", "min": 1.0, "ratio": 0.8},
    "error_ratio": {"direction": "up", "min": 0.05},
    "latency_p50": {"direction": "up", "min": 0.025, "ratio": 1.0},
    "latency_p99": {"direction": "up", "min": 0.05, "ratio": 1.0},
    "in_flight": {"direction": "up", "min": 5.0},
}


def signal_minimums(
    names: Iterable[str],
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    entity_overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Practical-significance rules for the catalogue signals among ``names``, with their units.

    ``overrides`` (vigil.yml ``signals:``) and then ``entity_overrides`` (``entities.<name>.signals``)
    replace fields of the defaults; ``min``/``ratio`` 0 in both makes any deviation count.
    """
    units = {s.name: s.unit for kind in SIGNALS.values() for s in kind}
    for layer, where in ((overrides, "signals"), (entity_overrides, "entities.<entity>.signals")):
        unknown = sorted(set(layer or {}) - set(units))
        if unknown:
            raise ConfigError(
                f"{where} names signals the catalogue does not have: {', '.join(unknown)}",
                hint=f"known signals: {', '.join(sorted(units))}",
            )
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        if name not in units:
            continue
        rule: dict[str, Any] = {"direction": "both", "min": 0.0, "ratio": 0.0, "range": False}
        rule.update(PRACTICAL_MINIMUMS.get(name, {}))
        for layer in (overrides or {}, entity_overrides or {}):
            rule.update({k: v for k, v in dict(layer.get(name) or {}).items() if v is not None})
        rule["unit"] = units[name]
        out[name] = rule
    return out


def signal_names(kind: str) -> list[str]:
    return [s.name for s in SIGNALS[kind]]


def signal_floors(names: Iterable[str]) -> dict[str, float]:
    """Signal name -> :attr:`Signal.floor` for the catalogue signals among ``names``."""
    known = {s.name: s.floor for kind in SIGNALS.values() for s in kind}
    return {n: known[n] for n in names if n in known}


def _metrics_of(kind: str) -> list[str]:
    return sorted({m for s in SIGNALS[kind] for i in s.inputs for m in i.metrics})


# -- entities -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entity:
    """A watched thing: ``kind`` host or service, its ``name``, and the label that carries it."""

    kind: str
    name: str
    label: str

    def matcher(self) -> Matcher:
        return (self.label, "=", self.name)

    def promql_matcher(self) -> str:
        return f'{self.label}="{promql_escape(self.name)}"'


def entity_of(name: str, labels: Mapping[str, str]) -> Entity | None:
    """The entity a raw series belongs to, or None if no signal uses it."""
    if name.startswith("node_"):
        inst = labels.get(HOST_LABEL)
        return Entity("host", inst, HOST_LABEL) if inst else None
    if name.startswith("demo_http_"):
        for label in SERVICE_LABELS:
            if labels.get(label):
                return Entity("service", labels[label], label)
    return None


# -- shared evaluation ----------------------------------------------------------------------------
@dataclass
class _Columns:
    """One input's series sampled on the step grid: ``values`` is (steps, series)."""

    labels: list[dict[str, str]]
    values: np.ndarray


def _reduce(op: str, m: np.ndarray) -> np.ndarray:
    if m.shape[1] == 0:
        return np.full(m.shape[0], np.nan)
    present = ~np.isnan(m).all(axis=1)
    with np.errstate(invalid="ignore"):
        if op == "sum":
            out = np.nansum(m, axis=1)
        elif op == "max":
            out = np.nanmax(np.where(np.isnan(m), -np.inf, m), axis=1)
        elif op == "min":
            out = np.nanmin(np.where(np.isnan(m), np.inf, m), axis=1)
        else:
            raise ValueError(f"unknown aggregation {op}")
    return np.where(present, out, np.nan)


def _evaluate(expr: Expr, cols: Mapping[Input, _Columns], n: int) -> np.ndarray:
    if isinstance(expr, float | int):
        return np.full(n, float(expr))
    if isinstance(expr, Agg):
        values = cols[expr.input].values
        if expr.absent_zero:
            # PromQL's `or vector(0)` works per evaluation step: before the first 5xx series exists
            # (it appears with the first error) the error count is 0, not unknown.
            return np.nan_to_num(_reduce(expr.op, values), nan=0.0) if values.shape[1] else np.zeros(n)
        return _reduce(expr.op, values)
    if isinstance(expr, Arith):
        a, b = _evaluate(expr.a, cols, n), _evaluate(expr.b, cols, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            if expr.op == "+":
                return a + b
            if expr.op == "-":
                return a - b
            if expr.op == "*":
                return a * b
            # Prometheus: x/0 is +-Inf, 0/0 is NaN; a ratio of zero traffic is unknown, not zero.
            return a / b
    if isinstance(expr, PairRatio):
        num, den = cols[expr.num], cols[expr.den]
        den_idx = {_key(lbl): j for j, lbl in enumerate(den.labels)}
        pairs = [(i, den_idx[_key(lbl)]) for i, lbl in enumerate(num.labels) if _key(lbl) in den_idx]
        if not pairs:
            return np.full(n, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.stack([num.values[:, i] / den.values[:, j] for i, j in pairs], axis=1)
        return _reduce(expr.op, ratios)
    if isinstance(expr, Quantile):
        return _histogram_quantile(expr.q, cols[expr.buckets])
    raise TypeError(f"unknown expression {expr!r}")


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))


def _histogram_quantile(q: float, buckets: _Columns) -> np.ndarray:
    """Prometheus' histogram_quantile over bucket rates summed by ``le``."""
    n = buckets.values.shape[0]
    by_le: dict[float, list[int]] = {}
    for j, lbl in enumerate(buckets.labels):
        try:
            by_le.setdefault(float(lbl.get("le", "nan")), []).append(j)
        except ValueError:
            continue
    les = sorted(le for le in by_le if not math.isnan(le))
    if not les or les[-1] != math.inf:
        return np.full(n, np.nan)
    counts = np.stack([_reduce("sum", buckets.values[:, by_le[le]]) for le in les], axis=1)
    # Buckets are cumulative; tiny non-monotonicity from independent scrapes is ironed out as
    # Prometheus does, by taking the running maximum.
    counts = np.fmax.accumulate(counts, axis=1)
    out = np.full(n, np.nan)
    upper = np.array(les)
    for t in range(n):
        row = counts[t]
        if np.isnan(row).any():
            continue
        total = row[-1]
        if not total > 0:
            continue
        rank = q * total
        b = int(np.searchsorted(row, rank, side="left"))
        if b == len(les) - 1:
            out[t] = upper[-2] if len(les) > 1 else np.nan
            continue
        lower_bound = 0.0 if b == 0 else upper[b - 1]
        below = 0.0 if b == 0 else row[b - 1]
        in_bucket = row[b] - below
        if b == 0 and upper[0] <= 0:
            out[t] = upper[0]
            continue
        out[t] = lower_bound + (upper[b] - lower_bound) * ((rank - below) / in_bucket if in_bucket > 0 else 0.0)
    return out


def compute_signals(kind: str, cols: Mapping[Input, _Columns], n: int) -> dict[str, np.ndarray]:
    """Every signal of ``kind`` from grid-sampled input columns (counters already turned to rates)."""
    return {s.name: _evaluate(s.expr, cols, n) for s in SIGNALS[kind]}


# -- batch ----------------------------------------------------------------------------------------
Source = Any  # an Archive, a PromClient, or None (the local archive from settings)


def _grid(start: pd.Timestamp, end: pd.Timestamp, step_s: float) -> np.ndarray:
    step_ms = max(1, round(step_s * 1000))
    lo = -(-int(start.value // 1_000_000) // step_ms) * step_ms
    hi = int(end.value // 1_000_000) // step_ms * step_ms
    return np.arange(lo, hi + 1, step_ms, dtype=np.int64) if hi >= lo else np.array([], dtype=np.int64)


def _columns_from_long(long: pd.DataFrame, inputs: Iterable[Input], grid_ms: np.ndarray) -> dict[Input, _Columns]:
    """Pivot archived rows onto the grid per input; counters become rates."""
    out: dict[Input, _Columns] = {}
    groups: dict[tuple[str, str], pd.DataFrame] = {}
    if not long.empty and len(grid_ms):
        long = long.assign(ts_ms=long["timestamp"].dt.as_unit("ms").astype("int64").to_numpy())
        groups = {k: g for k, g in long.groupby(["metric", "labels"], sort=True)}
    parsed = {k: json.loads(k[1]) for k in groups}
    for inp in inputs:
        labels, arrays = [], []
        for (metric, text), g in groups.items():
            lbl = parsed[(metric, text)]
            if not inp.matches(metric, lbl):
                continue
            col = np.full(len(grid_ms), np.nan)
            pos = np.searchsorted(grid_ms, g["ts_ms"].to_numpy())
            ok = (pos < len(grid_ms)) & (grid_ms[np.minimum(pos, len(grid_ms) - 1)] == g["ts_ms"].to_numpy())
            col[pos[ok]] = g["value"].to_numpy()[ok]
            if inp.counter:
                col = counter_rate(col, grid_ms / 1000, max_gap=LOOKBACK_S)
            labels.append({**lbl, "__name__": metric})
            arrays.append(col)
        values = np.stack(arrays, axis=1) if arrays else np.empty((len(grid_ms), 0))
        out[inp] = _Columns(labels, values)
    return out


def _entity_inputs(kind: str) -> list[Input]:
    seen: dict[Input, None] = {}
    for s in SIGNALS[kind]:
        for i in s.inputs:
            seen.setdefault(i)
    return list(seen)


def load_entity_frame(
    source: Source | str = None,
    entity: str | Entity | None = None,
    start: Any = None,
    end: Any = None,
    step: float | None = None,
    *,
    since_s: float | None = None,
    settings: Any = None,
) -> pd.DataFrame:
    """Signal values of one entity on the step grid: columns = signal names, UTC DatetimeIndex.

    ``source`` is an :class:`~vigil.ingest.archive.Archive`, a :class:`~vigil.prometheus.PromClient`
    or None for the local archive of ``settings``. ``start``/``end`` are datetimes or unix seconds;
    ``since_s`` instead takes the last that many seconds. ``load_entity_frame("host:9100",
    since_s=3600, settings=settings)`` also works: a string first argument is the entity, read from
    the local archive.
    """
    from vigil.ingest.archive import Archive

    if isinstance(source, str) and entity is None:
        source, entity = None, source
    if entity is None:
        raise DataError("load_entity_frame needs an entity")
    if settings is None and (source is None or step is None):
        raise DataError("reading the local archive needs the settings that locate it and its step")
    if source is None:
        source = Archive(settings.archive_dir)
    step_s = step or settings.collect_step_s or settings.scrape_interval_s
    end_ts = _ts(end) if end is not None else None
    if since_s is not None or start is None:
        if end_ts is None:
            end_ts = _latest(source)
        start_ts = end_ts - pd.Timedelta(seconds=since_s if since_s is not None else 3600)
    else:
        start_ts = _ts(start)
        end_ts = end_ts if end_ts is not None else _latest(source)
    if start_ts > end_ts:
        raise DataError(f"start {start_ts.isoformat()} is after end {end_ts.isoformat()}")
    ent = entity if isinstance(entity, Entity) else resolve_entity(source, entity, start_ts, end_ts)
    grid = _grid(start_ts, end_ts, step_s)
    inputs = _entity_inputs(ent.kind)
    metrics = sorted({m for i in inputs for m in i.metrics})
    if isinstance(source, Archive):
        long = source.read(
            start_ts, end_ts, [("__name__", "=~", "|".join(regex_literal(m) for m in metrics)), ent.matcher()]
        )
    elif isinstance(source, PromClient):
        long = _long_from_prometheus(source, metrics, ent, grid, step_s)
    else:
        raise DataError(f"unsupported signal source {type(source).__name__}")
    cols = _columns_from_long(long, inputs, grid)
    values = compute_signals(ent.kind, cols, len(grid))
    index = pd.DatetimeIndex(pd.to_datetime(grid, unit="ms", utc=True), name="timestamp").as_unit("ns")
    return pd.DataFrame(values, index=index, columns=signal_names(ent.kind))


def _long_from_prometheus(
    client: PromClient, metrics: Sequence[str], ent: Entity, grid: np.ndarray, step_s: float
) -> pd.DataFrame:
    from vigil.ingest.archive import labels_json

    if len(grid) == 0:
        return pd.DataFrame(columns=["timestamp", "metric", "labels", "value"])
    expr = selector(None, [("__name__", "=~", "|".join(regex_literal(m) for m in metrics)), ent.matcher()])
    rows: list[pd.DataFrame] = []
    for s in client.query_range(expr, grid[0] / 1000, grid[-1] / 1000, step_s):
        rows.append(
            pd.DataFrame(
                {
                    "timestamp": pd.to_datetime(np.round(s.timestamps * 1000).astype(np.int64), unit="ms", utc=True),
                    "metric": s.name,
                    "labels": labels_json(s.labels),
                    "value": s.values,
                }
            )
        )
    if not rows:
        return pd.DataFrame(columns=["timestamp", "metric", "labels", "value"])
    return pd.concat(rows, ignore_index=True)


def _ts(t: Any) -> pd.Timestamp:
    ts = pd.Timestamp(t, unit="s") if isinstance(t, int | float) else pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _latest(source: Source) -> pd.Timestamp:
    from vigil.ingest.archive import Archive

    if isinstance(source, Archive):
        last = source.last_end_ms()
        if last is None:
            raise DataError("the archive is empty", hint="run `vigil collect` or start the stack with `vigil up`")
        return pd.Timestamp(last, unit="ms", tz="UTC")
    return pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(seconds=5)


def list_entities(
    source: Source = None, *, settings: Any = None, kinds: Sequence[str] = ("host", "service")
) -> list[str]:
    """Names of the entities with data in ``source`` (default: the local archive)."""
    return [e.name for e in discover_entities(source, settings=settings, kinds=kinds)]


def discover_entities(
    source: Source = None,
    *,
    settings: Any = None,
    kinds: Sequence[str] = ("host", "service"),
    start: Any = None,
    end: Any = None,
) -> list[Entity]:
    """Entities with data in ``source`` (default: the local archive's last hour, or ``[start, end]``)."""
    from vigil.ingest.archive import Archive

    if source is None:
        if settings is None:
            raise DataError("reading the local archive needs the settings that locate it")
        source = Archive(settings.archive_dir)
    probes = {"host": ["node_load1", "node_cpu_seconds_total"], "service": [_REQ, *list(_IN_FLIGHT)]}
    metrics = [m for kind in kinds for m in probes[kind]]
    found: dict[tuple[str, str], Entity] = {}
    for metric, labels in _label_sets(source, metrics, start, end):
        ent = entity_of(metric, labels)
        if ent is not None and ent.kind in kinds:
            found.setdefault((ent.kind, ent.name), ent)
    return sorted(found.values(), key=lambda e: (e.kind, e.name))


def resolve_entity(source: Source, name: str, start: Any = None, end: Any = None) -> Entity:
    for ent in discover_entities(source, start=start, end=end):
        if ent.name == name:
            return ent
    raise NotFound(f"no host or service named {name!r} in the data", hint="see `vigil data stats` / list_entities()")


def _label_sets(source: Source, metrics: Sequence[str], start: Any, end: Any) -> list[tuple[str, dict[str, str]]]:
    from vigil.ingest.archive import Archive

    if isinstance(source, Archive):
        if start is None or end is None:
            last = source.last_end_ms()
            if last is None:
                return []
            # Recent data is enough to name entities; reading the whole archive would not scale.
            start, end = (last / 1000) - 3600, last / 1000
        names = "|".join(regex_literal(m) for m in metrics)
        frame = source.read(start, end, [("__name__", "=~", names)])
        if frame.empty:
            return []
        pairs = frame[["metric", "labels"]].drop_duplicates()
        return [(m, json.loads(t)) for m, t in zip(pairs["metric"], pairs["labels"], strict=True)]
    if isinstance(source, PromClient):
        return [(m, {k: v for k, v in s.items() if k != "__name__"}) for m in metrics for s in source.series([m])]
    raise DataError(f"unsupported signal source {type(source).__name__}")


# -- streaming ------------------------------------------------------------------------------------
@dataclass
class _SeriesBuf:
    name: str
    labels: dict[str, str]
    samples: list[tuple[int, float]] = field(default_factory=list)  # (ts_ms, value), sorted
    counter: CounterRate | None = None


@dataclass
class _EntityState:
    entity: Entity
    series: dict[tuple[tuple[str, str], ...], _SeriesBuf] = field(default_factory=dict)
    next_step_ms: int | None = None  # the oldest step not yet emitted
    newest_ms: int = -(2**62)
    received_ms: int = -(2**62)  # receiver's clock at its newest sample (when the caller says)
    ahead: list[int] = field(default_factory=list)  # heap of the distinct steps stamped past the receiver's clock
    ahead_set: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class SignalStep:
    entity: str
    kind: str
    timestamp: float  # unix seconds of the step
    values: dict[str, float]


class SignalAssembler:
    """Raw samples in, one dict of signal values per entity and completed step out.

    A step ``t`` holds, per series, the last sample at or before ``t`` within the lookback (as a
    Prometheus range query would); it is complete once a sample ``lag_steps`` steps newer has
    arrived for the same entity, or on :meth:`flush`. Counters use one
    :class:`~vigil.features.counters.CounterRate` per series.

    >>> asm = SignalAssembler(step_s=1.0)
    >>> asm.add({"__name__": "node_load1", "instance": "h"}, 1_000, 0.5)
    []
    >>> [s.values["load1"] for s in asm.add({"__name__": "node_load1", "instance": "h"}, 3_000, 0.7)]
    [0.5, 0.5]
    """

    def __init__(
        self,
        step_s: float = 1.0,
        *,
        lag_steps: int = 1,
        lookback_s: float = LOOKBACK_S,
        max_gap_steps: int = 600,
        max_entities: int = 2_000,
        max_series_per_entity: int = 2_000,
        kinds: Sequence[str] | None = None,
    ) -> None:
        self.step_ms = max(1, round(step_s * 1000))
        self.lag_steps = lag_steps
        self.lookback_ms = round(lookback_s * 1000)
        # Past this many missing steps an entity resumes at its newest step instead of emitting every
        # one in between: after an outage, or a sample stamped far ahead, the gap costs nothing.
        self.max_gap_ms = max_gap_steps * self.step_ms
        self._entities: dict[tuple[str, str], _EntityState] = {}
        # Only these kinds of entity are assembled (a host model's assembler holds no services).
        self._inputs = {kind: _entity_inputs(kind) for kind in (kinds or SIGNALS)}
        self.max_entities = max_entities
        self.max_series_per_entity = max_series_per_entity
        self.late_samples = 0
        self.ignored_samples = 0
        self.limited_samples = 0  # refused by the entity or series cap
        self.skipped_steps = 0

    def add(
        self,
        labels: Mapping[str, str],
        ts_ms: int,
        value: float,
        *,
        horizon_ms: int | None = None,
        received_ms: int | None = None,
    ) -> list[SignalStep]:
        """Feed one raw sample; returns the steps it completed (possibly none).

        A sample whose step lies past ``horizon_ms`` (the receiver's clock) is kept for its step but
        moves the entity no further than the clock: a sender whose clock runs ahead is scored as the
        clock reaches its samples, and one hostile sample stamped hours ahead ends nothing.
        ``received_ms`` (the receiver's clock now) lets :meth:`flush` find entities gone quiet.
        """
        name = labels.get("__name__", "")
        ent = entity_of(name, labels)
        if (
            ent is None
            or ent.kind not in self._inputs
            or not any(i.matches(name, labels) for i in self._inputs[ent.kind])
        ):
            self.ignored_samples += 1
            return []
        state = self._entities.get((ent.kind, ent.name))
        if state is None:
            if len(self._entities) >= self.max_entities:
                self.limited_samples += 1
                return []
            state = self._entities[(ent.kind, ent.name)] = _EntityState(ent)
        key = tuple(sorted(labels.items()))
        buf = state.series.get(key)
        if buf is None:
            if len(state.series) >= self.max_series_per_entity:
                self.limited_samples += 1
                return []
            counter = any(i.counter and i.matches(name, labels) for i in self._inputs[ent.kind])
            buf = state.series[key] = _SeriesBuf(
                name, dict(labels), counter=CounterRate(LOOKBACK_S) if counter else None
            )
        step = -(-int(ts_ms) // self.step_ms) * self.step_ms  # the grid point this sample is current at
        if state.next_step_ms is not None and step < state.next_step_ms:
            # Its step is already out, but it may still be the newest sample of its series for
            # the steps not yet emitted, so it is kept, not dropped.
            self.late_samples += 1
        bisect.insort(buf.samples, (int(ts_ms), float(value)))
        if received_ms is not None:
            state.received_ms = received_ms
        if horizon_ms is not None and step > horizon_ms:
            if step not in state.ahead_set:
                state.ahead_set.add(step)
                heapq.heappush(state.ahead, step)
        else:
            self._advance(state, step)
        if horizon_ms is not None:
            self._release(state, horizon_ms)
        return self._emit(state, state.newest_ms - self.lag_steps * self.step_ms)

    @staticmethod
    def _advance(state: _EntityState, step: int) -> None:
        if state.next_step_ms is None:
            state.next_step_ms = step
        state.newest_ms = max(state.newest_ms, step)

    def _release(self, state: _EntityState, horizon_ms: int) -> None:
        while state.ahead and state.ahead[0] <= horizon_ms:
            step = heapq.heappop(state.ahead)
            state.ahead_set.discard(step)
            self._advance(state, step)

    def add_many(self, samples: Iterable[tuple[Mapping[str, str], int, float]]) -> list[SignalStep]:
        out: list[SignalStep] = []
        for labels, ts_ms, value in samples:
            out.extend(self.add(labels, ts_ms, value))
        return out

    def flush(self, horizon_ms: int | None = None, received_before_ms: int | None = None) -> list[SignalStep]:
        """Emit every pending step up to the newest sample of each entity (no further than ``horizon_ms``);
        with ``received_before_ms``, only of the entities whose newest sample arrived before it."""
        out: list[SignalStep] = []
        for state in self._entities.values():
            if received_before_ms is not None and state.received_ms >= received_before_ms:
                continue
            if horizon_ms is not None:
                self._release(state, horizon_ms)
            out.extend(self._emit(state, state.newest_ms))
        return out

    def forget_idle(self, before_ms: int, horizon_ms: int | None = None) -> list[tuple[str, str]]:
        """Drop every entity whose newest sample is older than ``before_ms`` (samples held for a step
        past ``horizon_ms`` keep it); returns their (kind, name)."""
        if horizon_ms is not None:
            for state in self._entities.values():
                self._release(state, horizon_ms)
        gone = [key for key, state in self._entities.items() if state.newest_ms < before_ms and not state.ahead]
        for key in gone:
            del self._entities[key]
        return gone

    def _emit(self, state: _EntityState, until_ms: int) -> list[SignalStep]:
        out = []
        inputs = self._inputs[state.entity.kind]
        if state.next_step_ms is not None and until_ms - state.next_step_ms > self.max_gap_ms:
            self.skipped_steps += (until_ms - state.next_step_ms) // self.step_ms
            state.next_step_ms = until_ms
        dead: set[tuple[tuple[str, str], ...]] = set()
        while state.next_step_ms is not None and state.next_step_ms <= until_ms:
            t = state.next_step_ms
            per_input: dict[Input, tuple[list[dict[str, str]], list[float]]] = {i: ([], []) for i in inputs}
            for key, buf in state.series.items():
                value = self._value_at(buf, t)
                if not buf.samples or t - buf.samples[-1][0] >= self.lookback_ms:
                    dead.add(key)  # gone for a whole lookback (a removed interface, a replaced disk)
                if buf.counter is not None:
                    value = buf.counter.update(t / 1000, value)
                for inp in inputs:
                    if inp.matches(buf.name, buf.labels):
                        per_input[inp][0].append(buf.labels)
                        per_input[inp][1].append(value)
            cols = {
                i: _Columns(lbls, np.array(vals, dtype=np.float64).reshape(1, len(vals)))
                for i, (lbls, vals) in per_input.items()
            }
            values = {k: float(v[0]) for k, v in compute_signals(state.entity.kind, cols, 1).items()}
            out.append(SignalStep(state.entity.name, state.entity.kind, t / 1000, values))
            state.next_step_ms = t + self.step_ms
        # A dead series frees its place under the cap; were it to come back, it starts afresh.
        for key in dead:
            buf = state.series[key]
            if not buf.samples or state.newest_ms - buf.samples[-1][0] >= self.lookback_ms:
                del state.series[key]
        return out

    def _value_at(self, buf: _SeriesBuf, t: int) -> float:
        # The newest sample at or before t; older ones can go, the stream never looks back.
        i = bisect.bisect_right(buf.samples, (t, math.inf)) - 1
        if i < 0:
            return math.nan
        ts, value = buf.samples[i]
        del buf.samples[:i]
        # Prometheus' lookback window is left-open: (t - lookback, t].
        if is_stale_marker(value) or t - ts >= self.lookback_ms:
            return math.nan
        return value
