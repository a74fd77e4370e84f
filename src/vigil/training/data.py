"""Where training data comes from: a labelled dataset folder or the local Parquet archive.

Each source yields one :class:`EntityData` per entity, the unit Vigil trains, versions and serves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.errors import DataError, NotFound
from vigil.timeindex import unix_seconds


@dataclass(frozen=True)
class EntityData:
    """Training data of one entity.

    ``train`` is what the final model learns from. ``holdout`` (optional) follows it in time: the
    labelled test half of a benchmark dataset, or nothing for the archive. Cross-validation runs
    over ``train`` followed by ``holdout``; ``holdout_labels`` marks anomalous holdout rows.
    """

    entity: str
    source: str  # "dataset:smd", "archive"
    train: pd.DataFrame
    holdout: pd.DataFrame | None = None
    holdout_labels: np.ndarray | None = None
    step_s: float = 60.0
    # Model settings the source knows best (the archive's signal floors); the run's own params win.
    model_params: dict[str, Any] = field(default_factory=dict)

    @property
    def timeline(self) -> pd.DataFrame:
        if self.holdout is None:
            return self.train
        return pd.concat([self.train, self.holdout], ignore_index=True)

    @property
    def timeline_labels(self) -> np.ndarray | None:
        """Labels over ``timeline``: -1 where unknown (the unlabelled train half), else 0/1."""
        if self.holdout_labels is None:
            return None
        return np.concatenate([np.full(len(self.train), -1, dtype=np.int8), self.holdout_labels.astype(np.int8)])

    def window(self) -> dict[str, str]:
        """The training window as recorded in the run: timestamps when there are any, else steps."""
        idx = self.train.index
        return {"start": str(idx[0]), "end": str(idx[-1]), "rows": str(len(idx)), "step_s": str(self.step_s)}


def data_hash(frame: pd.DataFrame, labels: np.ndarray | None = None) -> str:
    """SHA-256 over column names, index and values (float64, row-major), and labels when given.

    Two runs on the same data and seed produce the same model, and the hash is how a reader of the
    registry can tell that two versions saw the same data.
    """
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(np.ascontiguousarray(frame.index.to_numpy()).astype(str).astype(np.bytes_).tobytes())
    digest.update(np.ascontiguousarray(frame.to_numpy(dtype=np.float64)).tobytes())
    if labels is not None:
        digest.update(np.ascontiguousarray(labels, dtype=np.int8).tobytes())
    return digest.hexdigest()


def from_dataset(
    directory: Path,
    entities: Sequence[str] | None = None,
    *,
    max_rows: int | None = None,
) -> Iterator[EntityData]:
    """SMD/ASD-format folder: the train split trains, the labelled test split is the holdout.

    ``max_rows`` keeps the first rows of each split (quick runs, tests), in time order.
    """
    from vigil.datasets import list_entities, load_smd_like

    directory = Path(directory)
    known = list_entities(directory)
    if not known:
        raise NotFound(f"no SMD/ASD-format dataset in {directory}", hint="expected train/, test/, test_label/")
    for entity in entities or known:
        split = load_smd_like(directory, entity)
        train, test, labels = split.train, split.test, split.labels
        if max_rows is not None:
            train, test, labels = train.iloc[:max_rows], test.iloc[:max_rows], labels[:max_rows]
        yield EntityData(
            entity=entity,
            source=f"dataset:{split.dataset}",
            train=train,
            holdout=test,
            holdout_labels=np.asarray(labels),
            step_s=split.step_s,
        )


def from_archive(
    since_s: float,
    entities: Sequence[str] | None = None,
    *,
    settings: object | None = None,
) -> Iterator[EntityData]:
    """The last ``since_s`` seconds of the local archive, one frame of raw signals per entity."""
    from vigil.ingest import signals

    names = list(entities) if entities else list(signals.list_entities(settings=settings))
    if not names:
        raise DataError("the archive holds no entities yet", hint="start the stack (`vigil up`) and let it collect")
    for entity in names:
        frame = read_archive_window(entity, since_s, settings)
        if frame is None or frame.empty:
            raise DataError(f"the archive has no data for {entity} in the last {since_s:.0f}s")
        yield archive_entity_data(entity, frame, "archive", settings=settings)


# How long a live alarm stays on after its last anomalous step. The pipeline's default hold (20
# steps) was chosen on 1-minute benchmark data; at the stack's 1 s steps, replayed on the two
# full-profile recordings, 10 s instead of 20 s cut the alarm's share of quiet time from 4.4 % to
# 1.8 % with the same faults caught, the same false runs and as many alarm runs per fault
# (1.25 -> 1.29): the extra 10 s only kept alarms on after the host had recovered.
LIVE_ALARM_HOLD_S = 10.0


def archive_entity_data(entity: str, frame: pd.DataFrame, source: str, settings: Any = None) -> EntityData:
    """Archive signals of one entity as training data for a model that will serve live: the
    catalogue's scale floors and practical minimums (with ``settings``' overrides), a threshold
    that keeps learning from the stream, an alarm hold of :data:`LIVE_ALARM_HOLD_S`, and no
    learning from what the model itself finds anomalous in its own window (nobody labels a live
    baseline)."""
    from vigil.ingest.catalog import signal_floors, signal_minimums

    names = [str(c) for c in frame.columns]
    glob, local = settings.signal_rules(entity) if settings is not None else ({}, {})
    step_s = _step_seconds(frame.index)
    return EntityData(
        entity=entity,
        source=source,
        train=frame,
        step_s=step_s,
        model_params={
            "signal_floors": signal_floors(names),
            "signal_minimums": signal_minimums(names, glob, local),
            "live_threshold": True,
            "screen_outliers": True,
            "alarm_hold": max(1, round(LIVE_ALARM_HOLD_S / step_s)),
        },
    )


def read_archive_window(entity: str, since_s: float, settings: object | None = None) -> pd.DataFrame:
    """``signals.load_entity_frame`` over the last ``since_s`` seconds, trimmed to the observed span."""
    from vigil.ingest import signals

    return observed_span(signals.load_entity_frame(entity, since_s=since_s, settings=settings))


def observed_span(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` from its first step with any value to its last.

    The archive answers the whole window asked for: a stack younger than the window (a first
    ``vigil train`` with the 7-day default after 15 minutes, a 6-hour retrain window in the first
    hours) gives rows with no value at all before its first sample, which are no behaviour to learn.
    Trained on, they were imputed to one identical row, hundreds of thousands of times, and the
    calibration learned that row instead of the host. Gaps inside the span are real and stay.
    """
    observed = np.flatnonzero(frame.notna().any(axis=1).to_numpy())
    if not len(observed):
        return frame.iloc[0:0]
    return frame.iloc[observed[0] : observed[-1] + 1]


def _step_seconds(index: pd.Index) -> float:
    if isinstance(index, pd.DatetimeIndex) and len(index) > 1:
        return float(np.median(np.diff(unix_seconds(index))))
    return 1.0
