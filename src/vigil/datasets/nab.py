"""NAB-format folders: ``data/<group>/<file>.csv`` (``timestamp,value``) and ``labels/*.json``.

NAB labels anomaly *windows* (``combined_windows.json``) centred on labelled points
(``combined_labels.json``); its scorer counts a detection inside a window as a hit. The per-row
``labels`` here mark rows inside any window, both ends included, as NAB does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.errors import DataError, NotFound

# Files the NAB README in ../shared/data calls server metrics; the rest are industrial sensors,
# taxi demand and keystroke timing.
NON_SERVER_SERIES = frozenset(
    {
        "realKnownCause/ambient_temperature_system_failure.csv",
        "realKnownCause/machine_temperature_system_failure.csv",
        "realKnownCause/nyc_taxi.csv",
        "realKnownCause/rogue_agent_key_hold.csv",
        "realKnownCause/rogue_agent_key_updown.csv",
    }
)


@dataclass(frozen=True)
class NabSeries:
    """One NAB file: ``frame`` has a DatetimeIndex and one column ``value``."""

    name: str  # "<group>/<file>.csv", the key NAB's label files use
    frame: pd.DataFrame
    labels: np.ndarray  # int8 per row: 1 inside an anomaly window
    windows: tuple[tuple[pd.Timestamp, pd.Timestamp], ...]
    anomaly_points: tuple[pd.Timestamp, ...]

    @property
    def group(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def is_server_metric(self) -> bool:
        return self.name not in NON_SERVER_SERIES


def list_nab(directory: str | Path) -> list[str]:
    """Names (``<group>/<file>.csv``) of the series under ``directory/data``."""
    data = Path(directory) / "data"
    return sorted(str(p.relative_to(data)) for p in data.glob("*/*.csv")) if data.is_dir() else []


def load_nab(directory: str | Path, *, names: list[str] | None = None, server_only: bool = False) -> list[NabSeries]:
    """Load NAB series with their windows; ``names`` picks a subset, ``server_only`` drops non-server data."""
    root = Path(directory)
    available = list_nab(root)
    if not available:
        raise NotFound(
            f"no NAB series under {root / 'data'}", hint="set VIGIL_DATA_DIR or run `vigil datasets fetch nab`"
        )
    wanted = available if names is None else names
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        raise NotFound(f"NAB series {unknown[0]!r} not found in {root}", hint=f"{len(available)} series available")
    windows = _read_json(root / "labels" / "combined_windows.json")
    points = _read_json(root / "labels" / "combined_labels.json")
    out = []
    for name in wanted:
        if server_only and name in NON_SERVER_SERIES:
            continue
        frame = _read_series(root / "data" / name)
        spans = tuple((pd.Timestamp(a), pd.Timestamp(b)) for a, b in windows.get(name, []))
        labels = np.zeros(len(frame), dtype=np.int8)
        for start, end in spans:
            labels[(frame.index >= start) & (frame.index <= end)] = 1
        out.append(
            NabSeries(
                name=name,
                frame=frame,
                labels=labels,
                windows=spans,
                anomaly_points=tuple(pd.Timestamp(t) for t in points.get(name, [])),
            )
        )
    return out


def _read_series(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, parse_dates=["timestamp"], index_col="timestamp", dtype={"value": np.float64})
    except (ValueError, KeyError) as exc:
        raise DataError(f"{path} is not a NAB 'timestamp,value' file: {exc}") from None
    if list(frame.columns) != ["value"]:
        raise DataError(f"{path}: expected columns timestamp,value, got {['timestamp', *frame.columns]}")
    return frame


def _read_json(path: Path) -> dict[str, list]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} must map file names to lists")
    return data
