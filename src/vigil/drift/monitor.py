"""Streaming drift state for one entity: feed it every scored step, read a snapshot when asked.

Pure core: no I/O, no clocks, no threads of its own. ``update`` is cheap (a row copy into a ring
buffer and one change-detector step) so it can sit on the scoring path; the PSI/KS work happens in
``snapshot``, which the metrics collector calls at scrape time and which is cached until new data
arrives. A lock makes ``update`` (scoring thread) and ``snapshot`` (scrape thread) safe together.

Steps flagged as data-quality gaps are counted and otherwise ignored: a scrape outage is the
data-quality layer's alarm, and letting its NaNs or zero-filled values into the window would make
every outage look like drift and trigger a pointless retrain.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from river import drift as river_drift

from vigil.drift.reference import Baseline, DriftReference
from vigil.drift.stats import ks_test, psi
from vigil.jsonsafe import json_safe


@dataclass(frozen=True)
class DriftConfig:
    """Decision thresholds; the defaults were checked on SMD (see docs/training.md)."""

    # A feature drifts when its PSI exceeds max(psi_floor, factor x its natural training level) and
    # its KS statistic exceeds ks_floor. PSI carries the decision because its bins come from the
    # training quantiles and cope with tied values (counters stuck at 0); requiring KS to be
    # self-calibrated too cost more than half the true detections on SMD for no fewer false ones.
    psi_floor: float = 0.25
    ks_floor: float = 0.1
    natural_factor: float = 1.5
    # The entity drifts when at least this share of its features drift: one noisy signal is not a
    # reason to retrain, a quarter of the machine moving is.
    min_drifted_fraction: float = 0.25
    # A half-empty window gives PSI/KS that mostly measure sampling noise.
    min_fill: float = 0.5
    alert_rate_detector: str = "adwin"  # or "page_hinkley"
    adwin_delta: float = 0.002
    # ADWIN flags the start of every alarm burst after a quiet spell: an incident is a change
    # point too. Alert-rate drift therefore also needs the window's alert rate to stay high: above
    # this share of steps and above `alert_rate_factor` x the training rate. At the 1-day default
    # window, an incident shorter than ~70 minutes is an incident, not drift.
    alert_rate_min: float = 0.05
    alert_rate_factor: float = 5.0


@dataclass(frozen=True)
class FeatureDrift:
    psi: float
    ks: float
    ks_pvalue: float
    psi_limit: float
    ks_limit: float
    drifted: bool


@dataclass(frozen=True)
class DriftSnapshot:
    """Everything ``vigil_drift_*`` metrics and ``vigil drift --json`` show, as plain data."""

    samples: int  # steps in the current window (gaps excluded)
    window: int
    ignored_samples: int  # data-quality gaps seen since the monitor started
    features: dict[str, FeatureDrift] = field(default_factory=dict)
    drifted_fraction: float = 0.0
    feature_drift: bool = False
    score_psi: float = float("nan")
    score_ks: float = float("nan")
    score_drift: bool = False
    alert_rate: float = float("nan")  # share of alarmed steps in the window
    reference_alert_rate: float = float("nan")
    alert_rate_changes: int = 0  # change points found by ADWIN / Page-Hinkley since start
    alert_rate_change: bool = False  # a change point inside the current window (drift only if the rate stays high)
    drifted: bool = False
    reasons: tuple[str, ...] = ()
    ready: bool = False  # window full enough to judge

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        return json_safe(data)


class DriftMonitor:
    """Drift of one entity's inputs, calibrated score and alert rate against its model's reference.

    >>> import numpy as np
    >>> ref = DriftReference.fit({"cpu": np.tile([0.1, 0.2, 0.3], 100)}, window=30)
    >>> mon = DriftMonitor(ref)
    >>> for t in range(30):
    ...     mon.update(float(t), {"cpu": 0.9})
    >>> snap = mon.snapshot()
    >>> snap.drifted, snap.reasons
    (True, ('features',))
    """

    def __init__(self, reference: DriftReference, config: DriftConfig | None = None) -> None:
        self.reference = reference
        self.config = config or DriftConfig()
        self._names = list(reference.features)
        self._window = reference.window
        self._values = np.full((self._window, len(self._names)), np.nan)
        self._scores = np.full(self._window, np.nan)
        self._alarms = np.full(self._window, np.nan)
        self._pos = 0
        self._filled = 0
        self._steps = 0  # non-gap steps since start, indexes change points
        self._ignored = 0
        self._changes = 0
        self._last_change_step = -1
        self._detector = self._new_detector()
        self._lock = threading.Lock()
        self._cache: DriftSnapshot | None = None

    @property
    def feature_names(self) -> list[str]:
        return list(self._names)

    def update(
        self,
        timestamp: float,
        values: Mapping[str, float],
        *,
        score: float | None = None,
        alarm: bool | None = None,
        gap: bool = False,
    ) -> None:
        """Record one scored step. ``gap=True`` marks a data-quality gap: counted, never judged."""
        del timestamp  # order is all that matters; kept so callers pass the step they scored
        with self._lock:
            self._cache = None
            if gap:
                self._ignored += 1
                return
            row = self._values[self._pos]
            for j, name in enumerate(self._names):
                v = values.get(name)
                row[j] = np.nan if v is None else v
            self._scores[self._pos] = np.nan if score is None else score
            self._alarms[self._pos] = np.nan if alarm is None else float(alarm)
            self._pos = (self._pos + 1) % self._window
            self._filled = min(self._filled + 1, self._window)
            self._steps += 1
            if alarm is not None:
                self._detector.update(float(alarm))
                if self._detector.drift_detected:
                    self._changes += 1
                    self._last_change_step = self._steps

    def update_frame(
        self,
        columns: Mapping[str, ArrayLike],
        *,
        scores: ArrayLike | None = None,
        alarms: ArrayLike | None = None,
        gaps: ArrayLike | None = None,
    ) -> None:
        """Batch form of :meth:`update` (offline ``vigil drift``, tests); same result step by step."""
        n = len(next(iter(columns.values()))) if columns else len(np.asarray(scores))
        cols = {name: np.asarray(columns[name], dtype=np.float64) for name in self._names if name in columns}
        s = None if scores is None else np.asarray(scores, dtype=np.float64)
        a = None if alarms is None else np.asarray(alarms, dtype=bool)
        g = np.zeros(n, dtype=bool) if gaps is None else np.asarray(gaps, dtype=bool)
        for i in range(n):
            self.update(
                float(i),
                {name: float(v[i]) for name, v in cols.items()},
                score=None if s is None else float(s[i]),
                alarm=None if a is None else bool(a[i]),
                gap=bool(g[i]),
            )

    def reset(self) -> None:
        """Start over, e.g. after a new champion (its reference replaces this one's)."""
        self.__init__(self.reference, self.config)  # type: ignore[misc]

    def snapshot(self) -> DriftSnapshot:
        with self._lock:
            if self._cache is not None:
                return self._cache
            values = self._values[: self._filled].copy()
            scores = self._scores[: self._filled].copy()
            alarms = self._alarms[: self._filled].copy()
            filled, ignored, changes = self._filled, self._ignored, self._changes
            recent_change = self._last_change_step >= 0 and self._steps - self._last_change_step < self._window
        snap = self._judge(values, scores, alarms, filled, ignored, changes, recent_change)
        with self._lock:
            self._cache = snap
        return snap

    def _judge(
        self,
        values: np.ndarray,
        scores: np.ndarray,
        alarms: np.ndarray,
        filled: int,
        ignored: int,
        changes: int,
        recent_change: bool,
    ) -> DriftSnapshot:
        cfg = self.config
        ready = filled >= cfg.min_fill * self._window
        features: dict[str, FeatureDrift] = {}
        for j, name in enumerate(self._names):
            features[name] = self._feature_drift(self.reference.features[name], values[:, j], ready)
        judged = [f for f in features.values() if not math.isnan(f.psi)]
        fraction = sum(f.drifted for f in judged) / len(judged) if judged else 0.0
        feature_drift = ready and fraction >= cfg.min_drifted_fraction

        score_psi = score_ks = float("nan")
        score_drift = False
        if self.reference.score is not None:
            sd = self._feature_drift(self.reference.score, scores, ready)
            score_psi, score_ks, score_drift = sd.psi, sd.ks, sd.drifted

        finite_alarms = alarms[np.isfinite(alarms)]
        alert_rate = float(finite_alarms.mean()) if finite_alarms.size else float("nan")
        ref_rate = self.reference.alert_rate if not math.isnan(self.reference.alert_rate) else 0.0
        rate_limit = max(cfg.alert_rate_min, cfg.alert_rate_factor * ref_rate)
        rate_drift = ready and recent_change and not math.isnan(alert_rate) and alert_rate > rate_limit
        reasons = tuple(
            reason
            for reason, hit in (("features", feature_drift), ("score", score_drift), ("alert_rate", rate_drift))
            if hit
        )
        return DriftSnapshot(
            samples=filled,
            window=self._window,
            ignored_samples=ignored,
            features=features,
            drifted_fraction=fraction,
            feature_drift=feature_drift,
            score_psi=score_psi,
            score_ks=score_ks,
            score_drift=score_drift,
            alert_rate=alert_rate,
            reference_alert_rate=self.reference.alert_rate,
            alert_rate_changes=changes,
            alert_rate_change=recent_change,
            drifted=bool(reasons),
            reasons=reasons,
            ready=ready,
        )

    def _feature_drift(self, baseline: Baseline, x: np.ndarray, ready: bool) -> FeatureDrift:
        cfg = self.config
        psi_limit = max(cfg.psi_floor, cfg.natural_factor * baseline.natural_psi)
        ks_limit = cfg.ks_floor
        finite = x[np.isfinite(x)]
        if finite.size < cfg.min_fill * self._window:
            nan = float("nan")
            return FeatureDrift(nan, nan, nan, psi_limit, ks_limit, False)
        p = psi(baseline.reference, finite)
        k, pv = ks_test(baseline.reference, finite)
        return FeatureDrift(p, k, pv, psi_limit, ks_limit, bool(ready and p > psi_limit and k > ks_limit))

    def _new_detector(self) -> Any:
        if self.config.alert_rate_detector == "page_hinkley":
            return river_drift.PageHinkley()
        if self.config.alert_rate_detector == "adwin":
            return river_drift.ADWIN(delta=self.config.adwin_delta)
        raise ValueError(f"unknown alert-rate detector {self.config.alert_rate_detector!r}; use adwin or page_hinkley")
