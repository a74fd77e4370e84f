"""Offline drift check (``vigil drift``): replay a stretch of data through a champion's DriftMonitor.

The serving process keeps live monitors; this answers the same question from the command line
for any window of the archive or of a benchmark dataset, with no server running.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from vigil.drift import DriftConfig, DriftMonitor, DriftReference, DriftSnapshot
from vigil.errors import ModelError
from vigil.registry import ModelRegistry


def load_reference(registry: ModelRegistry, name: str, version: str) -> DriftReference:
    data = registry.bundle_json(name, version, "drift_reference.json")
    if not data:
        raise ModelError(f"model {name} v{version} has no drift reference", hint="retrain it with `vigil train`")
    return DriftReference.from_dict(data)


def replay(
    reference: DriftReference,
    frame: pd.DataFrame,
    *,
    scores: pd.DataFrame | None = None,
    gaps: Sequence[bool] | np.ndarray | None = None,
    config: DriftConfig | None = None,
) -> DriftSnapshot:
    """Feed ``frame`` (raw signals, time order) and optionally its scores through a fresh monitor."""
    monitor = DriftMonitor(reference, config)
    monitor.update_frame(
        {str(c): frame[c].to_numpy(dtype=np.float64) for c in frame.columns},
        scores=None if scores is None else scores["score"].to_numpy(dtype=np.float64),
        alarms=None if scores is None else scores["alarm"].to_numpy(dtype=bool),
        gaps=gaps,
    )
    return monitor.snapshot()


def check_entity(
    registry: ModelRegistry, entity: str, frame: pd.DataFrame, *, ref: str = "champion"
) -> tuple[str, DriftSnapshot]:
    """``(version, snapshot)`` of ``entity``'s model (champion by default) on ``frame``."""
    info, model = registry.load(entity, ref)
    reference = load_reference(registry, info.name, info.version)
    return info.version, replay(reference, frame, scores=model.score_frame(frame))
