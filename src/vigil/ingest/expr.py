"""The expression language of the signal catalogue, its PromQL form, and its evaluation on arrays.

An expression (:data:`Expr`) computes one signal from sets of raw series (:class:`Input`): sums,
maxima and minima across series, per-label-set ratios, histogram quantiles and arithmetic. The same
expression renders as PromQL (:func:`to_promql`, for dashboards and chat evidence) and evaluates on
grid-sampled columns (:func:`evaluate`), which the batch loader and the streaming assembler share.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vigil.promql import Matcher, selector


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


def inputs_of(expr: Expr) -> list[Input]:
    if isinstance(expr, Agg):
        return [expr.input]
    if isinstance(expr, PairRatio):
        return [expr.num, expr.den]
    if isinstance(expr, Quantile):
        return [expr.buckets]
    if isinstance(expr, Arith):
        return inputs_of(expr.a) + inputs_of(expr.b)
    return []


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


@dataclass
class Columns:
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


def evaluate(expr: Expr, cols: Mapping[Input, Columns], n: int) -> np.ndarray:
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
        a, b = evaluate(expr.a, cols, n), evaluate(expr.b, cols, n)
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
        return histogram_quantile(expr.q, cols[expr.buckets])
    raise TypeError(f"unknown expression {expr!r}")


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))


def histogram_quantile(q: float, buckets: Columns) -> np.ndarray:
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
