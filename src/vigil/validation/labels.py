"""Fault windows as labelled data for model selection, kept apart from reported test runs.

A campaign run files its ground truth under ``$VIGIL_HOME/validation/labelsets/<purpose>/<run>.json``.
Only runs made with ``--purpose validation`` are offered to model selection
(:func:`validation_windows`); ``test`` runs are the ones reported, and are never read back for tuning.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.timeindex import unix_seconds

PURPOSES = ("test", "validation")


def labelset_dir(home: Path, purpose: str) -> Path:
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, not {purpose!r}")
    return home / "validation" / "labelsets" / purpose


def save_labelset(
    home: Path,
    run_id: str,
    purpose: str,
    faults: Sequence[Mapping[str, Any]],
    *,
    period: tuple[float, float],
    meta: Mapping[str, Any] | None = None,
) -> Path:
    path = labelset_dir(home, purpose) / f"{run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "run_id": run_id,
        "purpose": purpose,
        "period": list(period),
        "saved_at": time.time(),
        "windows": [{"type": f["type"], "start": f["start"], "end": f["end"]} for f in faults],
        "meta": dict(meta or {}),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
    return path


def load_labelsets(home: Path, purpose: str) -> list[dict[str, Any]]:
    d = labelset_dir(home, purpose)
    return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.exists() else []


def validation_windows(home: Path) -> list[dict[str, Any]]:
    """Every fault window of the validation-purpose runs (never of test runs)."""
    return [w for ls in load_labelsets(home, "validation") for w in ls["windows"]]


def last_campaign_end(home: Path) -> float:
    """End of the most recent campaign period of any purpose (0 if none): data after it is clean."""
    ends = [float(ls["period"][1]) for p in PURPOSES for ls in load_labelsets(home, p)]
    return max(ends, default=0.0)


def labels_for_index(index: pd.DatetimeIndex | Iterable[float], windows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """1 for every timestamp inside a fault window; ``index`` is a DatetimeIndex or unix seconds."""
    if isinstance(index, pd.DatetimeIndex):
        ts = unix_seconds(index)
    else:
        ts = np.asarray(list(index), dtype=np.float64)
    out = np.zeros(len(ts), dtype=np.int8)
    for w in windows:
        out[(ts >= float(w["start"])) & (ts < float(w["end"]))] = 1
    return out
