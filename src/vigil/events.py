"""Plain data types passed between layers (detection -> alerting -> chatops), no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Contribution:
    """How much one input metric drove an anomaly score."""

    metric: str
    value: float
    baseline: float
    share: float  # fraction of the anomaly attributed to this metric, shares sum to <= 1
    unit: str = ""  # the metric's unit (ratio, seconds, bytes/s, ...) when the catalog knows it


@dataclass(frozen=True)
class Anomaly:
    """One entity's alarm state at one time, with the evidence the explanation layer needs."""

    entity: str
    timestamp: float  # unix seconds of the sample that raised it
    score: float  # calibrated ensemble score in [0, 1]
    threshold: float
    active: bool
    contributions: tuple[Contribution, ...] = ()
    detector_scores: dict[str, float] = field(default_factory=dict)
    model_version: str = ""
    incident: str = ""  # the incident serving grouped this alarm into (vigil.detection.incidents)
