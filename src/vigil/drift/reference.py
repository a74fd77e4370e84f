"""What a model remembers about its training data so serving can tell when the world moved on.

Raw server metrics are never stationary: daily cycles, slow trends and batch jobs move a one-day
window's distribution well past textbook PSI thresholds (on SMD, half of the 38 signals exceed
PSI 0.25 on an ordinary held-back training day). A fixed threshold therefore alarms constantly.
Each feature's :class:`Baseline` records how much it *naturally* drifts: the 95th percentile of
PSI and KS over windows of the monitor's length taken from the training data itself. Live windows
are judged against ``max(floor, factor x natural)``, so a feature alarms only when it moves more
than it did while the model was learning what normal looks like.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from vigil.drift.stats import Reference, ks_statistic, psi

FORMAT = "vigil-drift-reference/1"
NATURAL_QUANTILE = 0.95


@dataclass(frozen=True)
class Baseline:
    reference: Reference
    natural_psi: float  # 95th percentile of PSI of training windows against the whole training set
    natural_ks: float

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference.to_dict(), "natural_psi": self.natural_psi, "natural_ks": self.natural_ks}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        return cls(
            reference=Reference.from_dict(data["reference"]),
            natural_psi=float(data["natural_psi"]),
            natural_ks=float(data["natural_ks"]),
        )

    @classmethod
    def fit(cls, values: ArrayLike, window: int) -> Baseline:
        x = np.asarray(values, dtype=np.float64).ravel()
        reference = Reference.from_samples(x)
        psis: list[float] = []
        kss: list[float] = []
        # Half-window stride: every stretch of training data is seen twice, once per phase.
        step = max(1, window // 2)
        for start in range(0, max(1, x.size - window + 1), step):
            chunk = x[start : start + window]
            if np.isfinite(chunk).sum() < window // 2:
                continue
            psis.append(psi(reference, chunk))
            kss.append(ks_statistic(reference, chunk))
        natural_psi = float(np.nanquantile(psis, NATURAL_QUANTILE)) if psis else 0.0
        natural_ks = float(np.nanquantile(kss, NATURAL_QUANTILE)) if kss else 0.0
        return cls(reference=reference, natural_psi=natural_psi, natural_ks=natural_ks)


@dataclass(frozen=True)
class DriftReference:
    """Per-feature baselines, the calibrated-score baseline and the training alert rate.

    >>> import numpy as np
    >>> ref = DriftReference.fit(
    ...     {"a": np.arange(100.0)}, scores=np.linspace(0, 1, 100), alarms=np.zeros(100), window=20
    ... )
    >>> DriftReference.from_dict(ref.to_dict()) == ref
    True
    """

    features: dict[str, Baseline]
    window: int
    score: Baseline | None = None
    alert_rate: float = float("nan")
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        columns: Mapping[str, ArrayLike],
        *,
        window: int,
        scores: ArrayLike | None = None,
        alarms: ArrayLike | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> DriftReference:
        """Summarise training data (``columns``: name -> values in time order)."""
        features = {name: Baseline.fit(values, window) for name, values in columns.items()}
        score = Baseline.fit(scores, window) if scores is not None else None
        alert_rate = float(np.mean(np.asarray(alarms, dtype=bool))) if alarms is not None else float("nan")
        return cls(features=features, window=int(window), score=score, alert_rate=alert_rate, meta=dict(meta or {}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "window": self.window,
            "alert_rate": None if np.isnan(self.alert_rate) else self.alert_rate,
            "features": {name: b.to_dict() for name, b in self.features.items()},
            "score": self.score.to_dict() if self.score is not None else None,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReference:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a drift reference (format {data.get('format')!r}, expected {FORMAT!r})")
        rate = data.get("alert_rate")
        return cls(
            features={name: Baseline.from_dict(b) for name, b in data["features"].items()},
            window=int(data["window"]),
            score=Baseline.from_dict(data["score"]) if data.get("score") else None,
            alert_rate=float("nan") if rate is None else float(rate),
            meta=dict(data.get("meta") or {}),
        )
