"""Signal frames of one entity from the archive or Prometheus, and the entities found there.

:func:`load_entity_frame` samples the entity's raw series on the step grid the way a Prometheus
range query does (the value at step ``t`` is the last sample at or before ``t``, within a 5-minute
lookback, cut by stale markers), turns counters into sample-to-sample rates with
:mod:`vigil.features.counters`, and computes the catalogue's signals (:mod:`vigil.ingest.catalog`)
exactly as serving's streaming assembler (:mod:`vigil.ingest.stream`) does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from vigil.errors import DataError, NotFound
from vigil.features.counters import counter_rate
from vigil.ingest.catalog import (
    ENTITY_PROBES,
    LOOKBACK_S,
    Entity,
    compute_signals,
    entity_inputs,
    entity_of,
    signal_names,
)
from vigil.ingest.expr import Columns, Input
from vigil.prometheus import PromClient
from vigil.promql import regex_literal, selector

Source = Any  # an Archive, a PromClient, or None (the local archive from settings)


def _grid(start: pd.Timestamp, end: pd.Timestamp, step_s: float) -> np.ndarray:
    step_ms = max(1, round(step_s * 1000))
    lo = -(-int(start.value // 1_000_000) // step_ms) * step_ms
    hi = int(end.value // 1_000_000) // step_ms * step_ms
    return np.arange(lo, hi + 1, step_ms, dtype=np.int64) if hi >= lo else np.array([], dtype=np.int64)


def _columns_from_long(long: pd.DataFrame, inputs: Iterable[Input], grid_ms: np.ndarray) -> dict[Input, Columns]:
    """Pivot archived rows onto the grid per input; counters become rates."""
    out: dict[Input, Columns] = {}
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
        out[inp] = Columns(labels, values)
    return out


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
    inputs = entity_inputs(ent.kind)
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
    metrics = [m for kind in kinds for m in ENTITY_PROBES[kind]]
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
