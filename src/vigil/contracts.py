"""The interfaces between layers that several packages code against.

The concrete model is :class:`vigil.detectors.pipeline.AnomalyPipeline` (features -> detectors ->
calibration -> combination -> threshold -> alarm aggregation). Training (``vigil.training``) fits and
registers it, serving (``vigil.detection``) loads it and streams samples through ``new_stream()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np
import pandas as pd

from vigil.events import Contribution


@dataclass(frozen=True)
class StepResult:
    """The outcome of scoring one time step of one entity."""

    timestamp: float
    score: float  # calibrated, combined ensemble score in [0, 1]; higher = more anomalous
    above_threshold: bool  # score > threshold at this step
    alarm: bool  # after alarm aggregation (k-of-n, suppression): what pages a person
    detector_scores: dict[str, float] = field(default_factory=dict)  # calibrated, per detector
    contributions: tuple[Contribution, ...] = ()  # top metrics that drove the score
    threshold: float = float("nan")  # the calibrated threshold this step was compared with (NaN: the model's)


class StreamScorer(Protocol):
    """Incremental scoring of one entity, one timestamp at a time (equal to batch scoring)."""

    def update(self, timestamp: float, values: Mapping[str, float]) -> StepResult | None:
        """Feed one step of raw signal values (NaN for missing); ``None`` while features warm up."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume after a restart (plain, picklable data)."""
        ...

    def load_state(self, state: dict[str, Any]) -> None: ...


class ScoringModel(Protocol):
    metric_names_: list[str]  # raw input signals, in column order
    feature_names_: list[str]  # engineered features the detectors see
    threshold_: float

    def fit(self, frame: pd.DataFrame) -> Self:
        """Rows are time steps (DatetimeIndex, or a RangeIndex of steps), columns are raw signals."""
        ...

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Batch scoring: same index; columns ``score``, ``above_threshold``, ``alarm``, one per detector."""
        ...

    def score_features(self, features: np.ndarray) -> np.ndarray:
        """Calibrated ensemble score for precomputed feature rows ``(n, len(feature_names_))``."""
        ...

    def new_stream(self) -> StreamScorer: ...

    def save(self, path: Path) -> None: ...

    @classmethod
    def load(cls, path: Path) -> Self: ...

    def model_card(self) -> dict[str, Any]:
        """Feature list, training window, data hash, library versions, reference statistics for drift."""
        ...


@dataclass(frozen=True)
class ModelRef:
    """One servable model version as a :class:`ModelSource` names it."""

    version: str
    fingerprint: str  # changes whenever the champion's content may have changed
    location: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class ModelSource(Protocol):
    """Where serving finds the champion: the models folder or the registry (vigil.detection.model_source)."""

    def champion(self) -> ModelRef | None: ...

    def load(self, ref: ModelRef) -> ScoringModel: ...

    def versions(self) -> list[ModelRef]: ...

    def promote(self, version: str) -> ModelRef: ...
