"""The whole scoring model: signals -> features -> detectors -> calibration -> combination -> alarms.

:class:`AnomalyPipeline` implements :class:`vigil.contracts.ScoringModel`. Its fitted stages are
public attributes so a serving path can compile them (``signals_``, ``extractor_``, ``center_``,
``scale_``, ``detectors_``, ``detector_columns_``, ``calibrators_``, ``weights_``,
``threshold_z_``); :meth:`AnomalyPipeline.score_surprisal` is the vectorised core they reproduce.
"""

from __future__ import annotations

import hashlib
import json
import platform
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd
from sklearn.base import clone

from vigil.detectors.alarms import AlarmAggregator, dilate
from vigil.detectors.autoencoder import AutoencoderDetector
from vigil.detectors.base import BaseDetector
from vigil.detectors.calibration import TailCalibrator
from vigil.detectors.combination import COMBINERS, agreement_weights, to_unit
from vigil.detectors.iforest import IForestDetector
from vigil.detectors.lof import LOFDetector
from vigil.detectors.ocsvm import OCSVMDetector
from vigil.detectors.pca import PCADetector
from vigil.detectors.significance import PracticalSignificance
from vigil.detectors.threshold import LiveThreshold
from vigil.errors import DataError, ModelError
from vigil.events import Contribution
from vigil.features.extractor import DEFAULT_KINDS, FeatureExtractor
from vigil.features.signals import SignalBuilder
from vigil.features.windows import nan_reduce
from vigil.jsonsafe import json_safe
from vigil.timeindex import unix_seconds

if TYPE_CHECKING:
    from vigil.detectors.stream import PipelineStream

DETECTORS: dict[str, type[BaseDetector]] = {
    "iforest": IForestDetector,
    "lof": LOFDetector,
    "ocsvm": OCSVMDetector,
    "autoencoder": AutoencoderDetector,
    "pca": PCADetector,
}
# LOF is available but not a default member: on SMD it ranked worst and pulled the ensemble below
# its best members (docs/benchmarks.md); the bench still reports it as a shadow detector.
# Feature kinds measured in their signal's own units (a z-score, a slope or a share is not).
SIGNAL_UNIT_KINDS = frozenset(
    {"level", "diff", "mean_dev_short", "std_short", "mean_dev_long", "std_long", "min_long", "max_long", "p10", "p90"}
    | {"ewma_res_fast", "ewma_res_slow", "seasonal_res", "lag"}
)
# Detector settings inside the pipeline, whose features arrive standardised with their scale floors.
# PCA standardising them again would divide a feature that barely moved in training by its own tiny
# spread and undo the floor: on a 200-step live baseline, a 2-sigma drift of one such feature put
# PCA's residual at the calibration cap on every step after training (measured, docs/validation.md).
INNER_DETECTOR_DEFAULTS: dict[str, dict[str, Any]] = {"pca": {"standardize": False}}
DEFAULT_DETECTORS = ("iforest", "ocsvm", "autoencoder", "pca")
FORMAT = "vigil.AnomalyPipeline/1"
_MODEL_FILE = "model.joblib"
_CARD_FILE = "model_card.json"


def make_detector(name: str, seed: int, params: Mapping[str, Any] | None = None) -> BaseDetector:
    """A fresh detector by name with Vigil's defaults, ``seed`` and any overrides."""
    if name not in DETECTORS:
        raise DataError(f"unknown detector {name!r}", hint=f"choose from {sorted(DETECTORS)}")
    cls = DETECTORS[name]
    kwargs = dict(params or {})
    if "random_state" in cls().get_params():
        kwargs.setdefault("random_state", seed)
    return cls(**kwargs)


def rolling_max(x: np.ndarray, width: int) -> np.ndarray:
    """Causal rolling maximum over the last ``width`` values (partial at the start)."""
    if width <= 1 or len(x) == 0:
        return np.asarray(x, dtype=np.float64).copy()
    pad = np.concatenate([np.full(width - 1, -np.inf), x])
    return np.lib.stride_tricks.sliding_window_view(pad, width).max(axis=1)


def rolling_second_most(x: np.ndarray, width: int, sign: int) -> np.ndarray:
    """Causal rolling second largest (``sign`` 1) or smallest (-1) known value over the last ``width``
    values; NaN where fewer than two of them are known (the stream's ``second_most``)."""
    v = sign * np.asarray(x, dtype=np.float64)
    pad = np.concatenate([np.full(width - 1, np.nan), v])
    windows = np.lib.stride_tricks.sliding_window_view(pad, width)
    known = ~np.isnan(windows)
    second = np.sort(np.where(known, windows, -np.inf), axis=1)[:, -2]
    return np.where(known.sum(axis=1) >= 2, sign * second, np.nan)


def tail_threshold(z: np.ndarray, rate: float, base_q: float = 0.98) -> float:
    """Surprisal level exceeded by a fraction ``rate`` of training steps, extrapolated in the tail.

    Quantiles far out in the training scores are noisy (a 1e-3 quantile of 10k steps rests on ten
    points), so beyond ``base_q`` the level comes from an exponential tail fitted to the excesses.

    >>> import numpy as np
    >>> z = -np.log1p(-(np.arange(100_000) + 0.5) / 100_000)  # exact unit-exponential quantiles
    >>> round(tail_threshold(z, 1e-3), 1)  # log(1000) = 6.9
    6.9
    """
    z = np.asarray(z, dtype=np.float64)
    z = z[np.isfinite(z)]
    if rate >= 1.0 - base_q:
        return float(np.quantile(z, 1.0 - rate))
    q0 = float(np.quantile(z, base_q))
    excess = z[z > q0] - q0
    beta = float(excess.mean()) if len(excess) else 0.0
    # Bounded scores (an RBF one-class SVM saturates far from its support) cannot reach an
    # extrapolated level at all; never ask for more than the largest training score.
    return min(q0 + beta * float(np.log((1.0 - base_q) / rate)), float(z.max()))


class AnomalyPipeline:
    """Multivariate anomaly scoring model for one entity (one machine, one service).

    Parameters
    ----------
    detectors : sequence of str
        Subset of ``iforest``, ``lof``, ``ocsvm``, ``autoencoder`` (and ``pca``).
    seed : int
        Seed of every random choice (subsamples, trees, network weights).
    kinds : sequence of str
        Feature kinds the non-autoencoder detectors see (see ``docs/features.md``).
    short_window, long_window, lags : int
        Feature windows in steps; ``lags`` is the autoencoder's window length.
    combine : {"mean", "max", "rank"}
        How calibrated detector scores are combined.
    weighting : {"uniform", "agreement"}
        Detector weights: equal, or each detector's rank agreement with the others on the
        cross-fitted training scores (label-free; measured slightly worse on SMD/ASD).
    smooth : int
        Rolling-max width applied to the combined score before thresholding.
    alarm_rate : float
        Fraction of (cross-fitted) training steps allowed above the threshold.
    alarm_k, alarm_n, alarm_hold, alarm_suppress : int
        Alarm aggregation (see :class:`~vigil.detectors.alarms.AlarmAggregator`).
    counters : sequence of str or None
        Counter columns (``None``: detected by name suffix).
    step_seconds : float
        Step length assumed for a frame indexed by step number instead of time.
    detector_params : mapping or None
        Per-detector keyword overrides, e.g. ``{"lof": {"n_neighbors": 30}}``.
    cross_fit : bool
        Calibrate and threshold on out-of-sample training scores (fit on one half in time,
        score the other); off, in-sample scores are used (faster, thresholds sit too low).
    clip : float
        Standardised features are clipped to ``[-clip, clip]``.
    scale_floor : float
        Smallest feature scale, as a fraction of the typical magnitude of the feature's signal. A
        signal that barely moved in training (a filesystem's free ratio, a slowly growing memory
        level) otherwise gets a scale of 1e-5 of its level, and the first ordinary drift after
        training reads as a 20-sigma event on every step (measured on the live stack: 87 % of quiet
        steps alarmed, all driven by ``fs_free_ratio``). 0 turns the floor off.
    top_k : int
        Contributions reported per step.
    shadow_detectors : sequence of str
        Detectors fitted, calibrated and scored alongside (``score_frame`` columns) with weight 0:
        they never affect the ensemble score or alarms; for side-by-side comparison only.
    signal_minimums : mapping or None
        Practical significance per signal, ``{name: {"min", "direction", "ratio", "unit"}}``
        (:class:`~vigil.detectors.significance.PracticalSignificance`): a step is above the
        threshold only if one of its ``top_k`` attributed signals also deviates from its training
        median by more than its minimum. Signals without a rule always count. The value compared
        is the median of the signal's last ``significance_window`` steps, so a one-step blip of a
        noisy 1-second signal (a CPU burst, one slow request) is not a deviation; a rule's
        ``window_s`` makes that signal's median span longer.
    out_of_range_alarms : bool
        A step is also above the threshold, however surprised the ensemble is, when a signal with a
        practical minimum lies past the whole range of its recent median in training, in its
        direction, by more than that minimum (:meth:`PracticalSignificance.out_of_range`): the
        clipped, calibrated ensemble cannot tell a level 40 standard deviations out from the bursts
        it was trained on. Signals whose rule says ``sustained`` (CPU: it bursts) are judged the same
        way on their median over the last ``sustained_window`` steps, while their recent level is
        past that range too.
    sustained_window : int
        Steps of the longer median that ``sustained`` rules judge (0: no such rule applies).
    live_threshold : bool
        Let the threshold follow the stream's own un-alarmed scores
        (:class:`~vigil.detectors.threshold.LiveThreshold`): never below the training threshold,
        at most ``live_max_raise`` surprisal above it.
    live_half_life_s, live_min_s, live_max_raise : float
        How long the live threshold remembers a score, how much scored time it needs before it
        moves, and how far it may rise.
    screen_outliers : bool
        Fit twice: the steps the first fit alarms on in its own training data (widened by
        ``long_window`` steps, the reach of the window features) are left out of the second. A
        baseline recorded live can hold an incident nobody labelled (measured: a 6-second stall of
        the watched service, 44 % errors and a 9.5 s p99, in a 15-minute baseline); learnt as
        normal, it made every later latency fault look ordinary. When more than
        ``max_screened_fraction`` of the steps would go, the data is a regime, not an incident, and
        the first fit stands.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from vigil.config import load_settings
    >>> from vigil.detectors.pipeline import AnomalyPipeline
    >>> X = np.loadtxt(load_settings().data_dir / "smd" / "train" / "machine-1-2.txt", delimiter=",")[:3000]
    >>> frame = pd.DataFrame(X, index=pd.to_datetime(np.arange(3000) * 60, unit="s")).add_prefix("m")
    >>> model = AnomalyPipeline(detectors=["iforest", "pca"]).fit(frame.iloc[:2000])
    >>> out = model.score_frame(frame.iloc[2000:])
    >>> list(out.columns)
    ['score', 'above_threshold', 'alarm', 'iforest', 'pca']
    """

    # Models saved before the floors existed were fitted without them; unpickling them skips __init__.
    scale_floor: float = 0.0
    signal_floors: Mapping[str, float] | None = None
    signal_minimums: Mapping[str, Mapping[str, Any]] | None = None
    significance_window: int = 1
    out_of_range_alarms: bool = False
    sustained_window: int = 0
    live_threshold: bool = False
    live_half_life_s: float = 3600.0
    live_min_s: float = 300.0
    live_max_raise: float = 6.0
    gated_smoothing: bool = False
    screen_outliers: bool = False
    max_screened_fraction: float = 0.2
    screened_rows_: int = 0

    def __init__(
        self,
        detectors: Sequence[str] = DEFAULT_DETECTORS,
        seed: int = 0,
        kinds: Sequence[str] = DEFAULT_KINDS,
        short_window: int = 5,
        long_window: int = 30,
        lags: int = 8,
        combine: str = "mean",
        weighting: str = "uniform",
        smooth: int = 5,
        alarm_rate: float = 0.012,
        alarm_k: int = 2,
        alarm_n: int = 3,
        alarm_hold: int = 20,
        alarm_suppress: int = 0,
        counters: Sequence[str] | None = None,
        step_seconds: float = 60.0,
        detector_params: Mapping[str, Mapping[str, Any]] | None = None,
        cross_fit: bool = True,
        clip: float = 20.0,
        scale_floor: float = 0.01,
        signal_floors: Mapping[str, float] | None = None,
        top_k: int = 5,
        shadow_detectors: Sequence[str] = (),
        signal_minimums: Mapping[str, Mapping[str, Any]] | None = None,
        significance_window: int = 3,
        out_of_range_alarms: bool = True,
        sustained_window: int = 15,
        live_threshold: bool = False,
        live_half_life_s: float = 3600.0,
        live_min_s: float = 300.0,
        live_max_raise: float = 6.0,
        gated_smoothing: bool = True,
        screen_outliers: bool = False,
        max_screened_fraction: float = 0.2,
    ) -> None:
        self.detectors = detectors
        self.seed = seed
        self.kinds = kinds
        self.short_window = short_window
        self.long_window = long_window
        self.lags = lags
        self.combine = combine
        self.weighting = weighting
        self.smooth = smooth
        self.alarm_rate = alarm_rate
        self.alarm_k = alarm_k
        self.alarm_n = alarm_n
        self.alarm_hold = alarm_hold
        self.alarm_suppress = alarm_suppress
        self.counters = counters
        self.step_seconds = step_seconds
        self.detector_params = detector_params
        self.cross_fit = cross_fit
        self.clip = clip
        self.scale_floor = scale_floor
        self.signal_floors = signal_floors
        self.top_k = top_k
        self.shadow_detectors = shadow_detectors
        self.signal_minimums = signal_minimums
        self.significance_window = significance_window
        self.out_of_range_alarms = out_of_range_alarms
        self.sustained_window = sustained_window
        self.live_threshold = live_threshold
        self.live_half_life_s = live_half_life_s
        self.live_min_s = live_min_s
        self.live_max_raise = live_max_raise
        self.gated_smoothing = gated_smoothing
        self.screen_outliers = screen_outliers
        self.max_screened_fraction = max_screened_fraction

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__init__.__code__.co_varnames[1 : self.__init__.__code__.co_argcount]}

    # ------------------------------------------------------------------ time
    def _timestamps(self, frame: pd.DataFrame) -> np.ndarray:
        idx = frame.index
        if isinstance(idx, pd.DatetimeIndex):
            return unix_seconds(idx)
        if pd.api.types.is_numeric_dtype(idx):
            return np.asarray(idx, dtype=np.float64) * float(self.step_seconds)
        raise DataError("the frame index must be a DatetimeIndex or step numbers")

    def _regrid(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Values on a regular grid of ``step_`` (missing steps become NaN rows), grid timestamps,
        and the grid position of every input row."""
        ts = self._timestamps(frame)
        missing = [c for c in self.metric_names_ if c not in frame.columns]
        if missing:
            raise DataError(f"frame lacks metrics the model was trained on: {missing[:5]}")
        values = frame[self.metric_names_].to_numpy(dtype=np.float64, copy=True)
        if len(ts) and np.any(np.diff(ts) <= 0):
            raise DataError("frame index must be strictly increasing")
        pos = np.rint((ts - ts[0]) / self.step_).astype(np.int64) if len(ts) else np.zeros(0, dtype=np.int64)
        if len(pos) and pos[-1] == len(pos) - 1:
            return values, ts[0] + pos * self.step_, pos
        n = int(pos[-1]) + 1 if len(pos) else 0
        grid = np.full((n, values.shape[1]), np.nan)
        grid[pos] = values
        return grid, ts[0] + np.arange(n) * self.step_, pos

    # ------------------------------------------------------------------- fit
    def fit(self, frame: pd.DataFrame) -> Self:
        """Learn every stage from ``frame`` (rows are time steps, columns raw signals)."""
        frame = _check_frame(frame)
        self._fit_once(frame)
        self.screened_rows_ = 0
        if not self.screen_outliers:
            return self
        own = dilate(self.score_frame(frame)["alarm"].to_numpy(dtype=bool), self.long_window)
        if own.any() and own.mean() <= self.max_screened_fraction:
            self._fit_once(frame.loc[~own])
            self.screened_rows_ = int(own.sum())
        return self

    def _fit_once(self, frame: pd.DataFrame) -> None:
        self.attribution_ = None
        unknown = [d for d in [*self.detectors, *self.shadow_detectors] if d not in DETECTORS]
        if not self.detectors or unknown:
            raise DataError(f"unknown detectors {unknown}", hint=f"choose from {sorted(DETECTORS)}")
        if self.combine not in COMBINERS:
            raise DataError(f"unknown combiner {self.combine!r}", hint=f"choose from {sorted(COMBINERS)}")
        self.metric_names_ = [str(c) for c in frame.columns]
        frame = frame.set_axis(self.metric_names_, axis=1)
        ts_raw = self._timestamps(frame)
        steps = np.diff(ts_raw)
        self.step_ = float(np.median(steps)) if len(steps) else float(self.step_seconds)
        if not self.step_ > 0:
            raise DataError("frame index must be strictly increasing")
        values, ts, _ = self._regrid(frame)
        if len(values) < 4 * max(self.long_window, self.lags):
            raise DataError(f"need at least {4 * max(self.long_window, self.lags)} steps to train, got {len(values)}")

        self.signals_ = SignalBuilder(counters=self.counters).fit(self.metric_names_)
        signals = self.signals_.transform(values, ts)
        kinds = tuple(self.kinds)
        if "autoencoder" in [*self.detectors, *self.shadow_detectors]:
            kinds = tuple(dict.fromkeys(kinds + ("level", "lag")))
        self.extractor_ = FeatureExtractor(
            kinds=kinds, short_window=self.short_window, long_window=self.long_window, lags=self.lags
        ).fit(signals, ts, self.signals_.signal_names_)
        feats = self.extractor_.transform(signals, ts)
        self.feature_names_ = list(self.extractor_.feature_names_)

        center = nan_reduce(np.nanmedian, feats, axis=0)
        std = nan_reduce(np.nanstd, feats, axis=0)
        self.center_ = np.nan_to_num(center, nan=0.0)
        floor = np.maximum(self.scale_floor * self._signal_magnitudes(signals), self._absolute_floors())
        std = np.where(np.isfinite(std), np.maximum(std, floor), std)
        # A feature that never moved in training (and whose signal sits at zero) gets unit scale:
        # any movement later is news, and the clip bounds how loud that news can be.
        self.scale_ = np.where(np.isfinite(std) & (std > 1e-9), std, 1.0)
        Z = self.standardize(feats)

        group = np.array(self.extractor_.feature_group_)
        base_cols = np.flatnonzero(np.isin(group, [k for k in self.kinds if k != "lag"]))
        window_cols = np.flatnonzero(np.isin(group, [k for k in self.kinds if k != "lag"] + ["level", "lag"]))
        # The autoencoder also sees the last ``lags`` raw steps of every signal (short temporal
        # context it can reconstruct); the other detectors see the window summaries only.
        self.scorers_ = list(dict.fromkeys([*self.detectors, *self.shadow_detectors]))
        self.detector_columns_ = {
            name: (window_cols if name == "autoencoder" else base_cols).astype(np.int64) for name in self.scorers_
        }

        self.detectors_ = {}
        raw_cf = np.empty((len(Z), len(self.scorers_)))
        half = len(Z) // 2
        for j, name in enumerate(self.scorers_):
            proto = make_detector(
                name, self.seed, {**INNER_DETECTOR_DEFAULTS.get(name, {}), **(self.detector_params or {}).get(name, {})}
            )
            Xd = Z[:, self.detector_columns_[name]]
            self.detectors_[name] = clone(proto).fit(Xd)
            if self.cross_fit:
                raw_cf[half:, j] = clone(proto).fit(Xd[:half]).score_samples(Xd[half:])
                raw_cf[:half, j] = clone(proto).fit(Xd[half:]).score_samples(Xd[:half])
            else:
                raw_cf[:, j] = self.detectors_[name].score_samples(Xd)
        self.calibrators_ = {n: TailCalibrator().fit(raw_cf[:, j]) for j, n in enumerate(self.scorers_)}
        self.train_surprisal_ = np.column_stack(
            [self.calibrators_[n].surprisal(raw_cf[:, j]) for j, n in enumerate(self.scorers_)]
        )
        members = np.array([n in self.detectors for n in self.scorers_])
        w = np.zeros(len(self.scorers_))
        if self.weighting == "agreement":
            w[members] = agreement_weights(self.train_surprisal_[:, members])
        elif self.weighting == "uniform":
            w[members] = 1.0 / members.sum()
        else:
            raise DataError(f"unknown weighting {self.weighting!r}", hint="use 'agreement' or 'uniform'")
        # Weights cover every scorer (shadows at 0) so surprisal matrices combine without reindexing.
        self.weights_ = w
        combined = COMBINERS[self.combine](self.train_surprisal_, self.weights_)
        self.threshold_z_ = tail_threshold(rolling_max(combined, self.smooth), self.alarm_rate)
        self.threshold_ = float(to_unit(self.threshold_z_))

        self._record_card(frame, ts_raw, values, signals, feats, combined)
        n_metrics = len(self.metric_names_)
        self.judge_windows_ = self._judge_windows_for(self.metric_names_)
        self.significance_ = None  # fitted below, from these ranges; a refit must not judge by the last fit's
        judged = self._judged_medians(signals[:, :n_metrics])
        low, high = nan_reduce(np.nanmin, judged, axis=0), nan_reduce(np.nanmax, judged, axis=0)
        slow = self._recent_medians(signals[:, :n_metrics], self._slow_window())
        slow_low, slow_high = nan_reduce(np.nanmin, slow, axis=0), nan_reduce(np.nanmax, slow, axis=0)
        self.significance_ = PracticalSignificance(self.signal_minimums).fit(
            self.metric_names_, self.signal_median_[:n_metrics], low=low, high=high,
            slow_low=slow_low, slow_high=slow_high,
        )  # fmt: skip

    def _recent_medians(self, rows: np.ndarray, window: int | None = None) -> np.ndarray:
        """Per row, each metric's median over the last ``window`` rows (default
        ``significance_window``: what a stream judges significance on)."""
        w = max(int(self.significance_window if window is None else window), 1)
        return pd.DataFrame(rows).rolling(w, min_periods=1).median().to_numpy(dtype=np.float64)

    def _judge_windows_for(self, names: Sequence[str]) -> np.ndarray:
        """Per metric, the steps its median is judged over: ``significance_window``, or longer where
        its rule's ``window_s`` says a deviation must hold that long to count."""
        rules = self.signal_minimums or {}
        base = max(int(self.significance_window), 1)
        out = np.full(len(names), base, dtype=np.int64)
        for i, name in enumerate(names):
            window_s = (rules.get(name) or {}).get("window_s")
            if window_s:
                out[i] = max(base, round(float(window_s) / self.step_))
        return out

    def _long_judged(self) -> dict[int, np.ndarray]:
        """Columns judged over more than ``significance_window`` steps, grouped by their window."""
        windows = getattr(self, "judge_windows_", None)
        if windows is None:
            return {}
        base = max(int(self.significance_window), 1)
        return {int(w): np.flatnonzero(windows == w) for w in np.unique(windows) if w > base}

    def _judged_medians(self, rows: np.ndarray) -> np.ndarray:
        """Per row, each metric's median over its judging window (:meth:`_judge_windows_for`), or the
        second most extreme value of that window where a ``repeated_level`` rule takes it: the values
        practical significance and the range rules compare."""
        judged = self._recent_medians(rows).copy()  # pandas may hand back a read-only view
        sig = getattr(self, "significance_", None)
        repeats = sig.repeats() if sig is not None else {}
        for window, cols in self._long_judged().items():
            long = self._recent_medians(rows[:, cols], window)
            if sig is None:
                judged[:, cols] = long
                continue
            judged[:, cols] = sig.less_extreme_rows(cols, judged[:, cols], long)
            for col in (int(c) for c in cols if int(c) in repeats):
                second = rolling_second_most(rows[:, col], window, repeats[col])
                judged[:, col] = sig.with_repeats_rows(col, judged[:, col], second)
        return judged

    def _sustained_medians(self, rows: np.ndarray) -> np.ndarray | None:
        """:meth:`_recent_medians` over ``sustained_window``, or None when no signal has a ``sustained``
        rule (the default): batch scoring then skips a rolling median of every column."""
        sustained = getattr(getattr(self, "significance_", None), "sustained_", None)
        if not self.sustained_window or sustained is None or not sustained.any():
            return None
        return self._recent_medians(rows, self._slow_window())

    def _slow_window(self) -> int:
        """Rows a stream keeps for the ``sustained`` rules' median (at least the significance window)."""
        return max(int(self.sustained_window), int(self.significance_window), 1)

    def _absolute_floors(self) -> np.ndarray:
        """Per feature: the configured floor of its signal, for features in the signal's units (else 0)."""
        floors = self.signal_floors or {}
        names = self.signals_.signal_names_
        fx = self.extractor_
        return np.array(
            [
                float(floors.get(names[m], 0.0)) if m >= 0 and group in SIGNAL_UNIT_KINDS else 0.0
                for m, group in zip(fx.feature_metric_.tolist(), fx.feature_group_, strict=True)
            ]
        )

    def _signal_magnitudes(self, signals: np.ndarray) -> np.ndarray:
        """Per feature: the median absolute level of the signal it is computed from (0 if none)."""
        levels = np.nan_to_num(nan_reduce(np.nanmedian, np.abs(np.asarray(signals, dtype=np.float64)), axis=0), nan=0.0)
        by_signal = dict(zip(self.signals_.signal_names_, levels.tolist(), strict=True))
        return np.array([by_signal.get(name.split("|", 1)[0], 0.0) for name in self.feature_names_])

    def standardize(self, feats: np.ndarray) -> np.ndarray:
        """Engineered features -> detector input: centred, scaled, clipped; missing -> the centre.

        NaN here means the feature could not be computed (gap, stale series, flat window); it is
        replaced by the training centre explicitly, and the ``missing_frac`` and ``stale`` features
        carry the fact that data was missing.
        """
        Z = (np.asarray(feats, dtype=np.float64) - self.center_) / self.scale_
        return np.clip(np.nan_to_num(Z, nan=0.0, posinf=self.clip, neginf=-self.clip), -self.clip, self.clip)

    # --------------------------------------------------------------- scoring
    def score_surprisal(self, Z: np.ndarray) -> np.ndarray:
        """Per-detector surprisal ``-log(1 - u)`` of standardised feature rows, ``(n, len(scorers_))``."""
        self._check_fitted()
        # Z is validated and standardised here; skip the per-call input checks of score_samples.
        if Z.shape[0] == 1:  # the streaming step: plain-float calibration, the vectorised numbers to the last bit
            out = np.empty((1, len(self.scorers_)))
            for j, n in enumerate(self.scorers_):
                raw = float(self.detectors_[n]._score(Z[:, self.detector_columns_[n]])[0])
                out[0, j] = self.calibrators_[n].surprisal_one(raw)
            return out
        return np.column_stack(
            [
                self.calibrators_[n].surprisal(self.detectors_[n]._score(Z[:, self.detector_columns_[n]]))
                for n in self.scorers_
            ]
        )

    def combine_surprisal(self, z: np.ndarray) -> np.ndarray:
        """Combined surprisal of ``z`` with columns ``scorers_`` (or just the ensemble ``detectors``)."""
        w = self.weights_
        if z.shape[1] != len(w) and z.shape[1] == len(self.detectors):
            w = w[[self.scorers_.index(n) for n in self.detectors]]
        return COMBINERS[self.combine](z, w)

    def score_features(self, features: np.ndarray) -> np.ndarray:
        """Calibrated ensemble score in [0, 1] of precomputed feature rows ``(n, n_features)``.

        Rows are scored independently: no temporal smoothing, no alarm state (those belong to a
        stream). Compare with ``threshold_`` for a conservative above-threshold decision.
        """
        self._check_fitted()
        F = np.asarray(features, dtype=np.float64)
        if F.ndim == 1:
            F = F[None]
        if F.ndim != 2 or F.shape[1] != len(self.feature_names_):
            raise DataError(f"expected feature rows of width {len(self.feature_names_)}, got shape {F.shape}")
        return to_unit(self.combine_surprisal(self.score_surprisal(self.standardize(F))))

    def features_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Engineered features of every row of ``frame`` (same index, columns ``feature_names_``)."""
        self._check_fitted()
        frame = _check_frame(frame).set_axis([str(c) for c in frame.columns], axis=1)
        values, ts, pos = self._regrid(frame)
        feats = self.extractor_.transform(self.signals_.transform(values, ts), ts)
        return pd.DataFrame(feats[pos], index=frame.index, columns=self.feature_names_)

    def surprisal_frame(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-detector surprisal ``(grid_rows, n_detectors)``, the smoothed combined surprisal, and
        the grid position of every input row (missing steps are scored as NaN rows in between)."""
        z, smoothed, pos, _Z, _signals = self._score_grid(frame)
        return z, smoothed, pos

    def _score_grid(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        self._check_fitted()
        frame = _check_frame(frame).set_axis([str(c) for c in frame.columns], axis=1)
        values, ts, pos = self._regrid(frame)
        signals = self.signals_.transform(values, ts)
        Z = self.standardize(self.extractor_.transform(signals, ts))
        z = self.score_surprisal(Z)
        return z, rolling_max(self.combine_surprisal(z), self.smooth), pos, Z, signals

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Batch scoring; equal (to float tolerance) to streaming the same rows through ``new_stream()``."""
        z, smoothed, pos, Z, signals = self._score_grid(frame)
        surprised = smoothed > self.threshold_z_
        significant = np.zeros(len(smoothed), dtype=bool)
        metrics = signals[:, : len(self.metric_names_)]
        recent = self._judged_medians(metrics)
        moved: dict[int, list[int]] = {}
        for r in np.flatnonzero(surprised):
            if self.gates_smoothing:
                moved[r] = self.significant_signals(Z[r], recent[r])
                significant[r] = bool(moved[r])
            else:
                significant[r] = self.practically_significant(Z[r], recent[r])
        if self.gates_smoothing:
            smoothed_judged = self._gated_smoothed(z, Z, significant, moved)
            candidate = (smoothed_judged > self.threshold_z_) & significant
        else:
            smoothed_judged = smoothed
            candidate = surprised & significant
        out_of_range = self.out_of_range_mask(recent, self._sustained_medians(metrics)).any(axis=1)
        live = self.new_live_threshold()
        if live is None:
            above = candidate | out_of_range
            alarm = self._aggregator().run(above)
        else:
            # The live threshold depends on which earlier steps alarmed, so this part runs in order.
            above = np.zeros(len(smoothed), dtype=bool)
            alarm = np.zeros(len(smoothed), dtype=bool)
            agg = self._aggregator()
            for r in range(len(smoothed)):
                above[r] = (candidate[r] and smoothed_judged[r] > live.value) or out_of_range[r]
                alarm[r] = agg.step(above[r])
                live.update(float(smoothed[r]), bool(alarm[r]))
        out = pd.DataFrame(
            {"score": to_unit(smoothed[pos]), "above_threshold": above[pos], "alarm": alarm[pos]}, index=frame.index
        )
        for j, n in enumerate(self.scorers_):
            out[n] = to_unit(z[pos, j])
        return out

    def _gated_smoothed(
        self, z: np.ndarray, Z: np.ndarray, significant: np.ndarray, moved: Mapping[int, Sequence[int]]
    ) -> np.ndarray:
        """Per row with a significant step, the most surprisal the smoothing may carry to it
        (``gated_smoothing``; -inf elsewhere): that of the last ``smooth`` steps at which a signal had
        moved enough to matter, or whose surprise was mostly about a signal that has moved now."""
        combined = self.combine_surprisal(z)
        out = np.full(len(combined), -np.inf)
        w = max(int(self.smooth), 1)
        top: dict[int, int] = {}  # row by row, as the stream works it out (a matrix product rounds otherwise)
        for r in np.flatnonzero(significant):
            for s in range(max(r - w + 1, 0), r + 1):
                if significant[s]:
                    out[r] = max(out[r], combined[s])
                elif combined[s] > self.threshold_z_:  # under it a step cannot lift the maximum over it
                    if s not in top:
                        top[s] = int(np.argmax(self._metric_attribution(Z[s])))
                    if top[s] in moved[r]:
                        out[r] = max(out[r], combined[s])
        return out

    @property
    def gates_smoothing(self) -> bool:
        """Whether the smoothing is gated (``gated_smoothing``): only with practical-significance
        rules to say what moved; without them every surprised step counts as moved anyway."""
        return bool(self.gated_smoothing) and getattr(self, "significance_", None) is not None

    def new_live_threshold(self) -> LiveThreshold | None:
        """A fresh live threshold for one stream, or None when the threshold is the training one."""
        if not self.live_threshold:
            return None
        return LiveThreshold(
            base=self.threshold_z_,
            rate=self.alarm_rate,
            half_life_steps=self.live_half_life_s / self.step_,
            min_steps=int(self.live_min_s / self.step_),
            max_raise=self.live_max_raise,
        )

    def practically_significant(self, z_row: np.ndarray, signal_row: np.ndarray) -> bool:
        """Whether one of the ``top_k`` signals behind a standardised feature row deviates from its
        training median by more than its practical minimum (:mod:`vigil.detectors.significance`);
        ``signal_row`` holds the raw metrics' recent values (the median over the window)."""
        if getattr(self, "significance_", None) is None:
            return True
        return bool(self.significant_signals(z_row, signal_row))

    def significant_signals(self, z_row: np.ndarray, signal_row: np.ndarray) -> list[int]:
        """The ``top_k`` signals behind a standardised feature row that deviate by more than their
        practical minimum (all of the ``top_k`` when the model has no rules)."""
        per_metric = self._metric_attribution(z_row)
        k = min(self.top_k, len(per_metric))
        top = np.argpartition(-per_metric, k - 1)[:k] if k < len(per_metric) else np.arange(len(per_metric))
        top = top[per_metric[top] > 0]
        sig = getattr(self, "significance_", None)
        return [int(i) for i in top if sig is None or sig.moved(signal_row, int(i))]

    def out_of_range_mask(self, signal_rows: np.ndarray, slow_rows: np.ndarray | None = None) -> np.ndarray:
        """Which raw metrics' recent values (one row or many; ``slow_rows``: their medians over
        ``sustained_window``) lie past their training range by more than their practical minimum;
        none unless ``out_of_range_alarms``."""
        sig = getattr(self, "significance_", None)
        if not self.out_of_range_alarms or sig is None:
            return np.zeros(np.shape(signal_rows), dtype=bool)
        return sig.out_of_range_mask(signal_rows, slow_rows if self.sustained_window else None)

    def _metric_attribution(self, z_row: np.ndarray) -> np.ndarray:
        """Per raw metric, the squared standardised deviation of the features computed from it."""
        return (np.asarray(z_row, dtype=np.float64) ** 2) @ self._attribution_matrix()

    def _attribution_matrix(self) -> np.ndarray:
        """``(n_features, n_metrics)``: how each feature's squared z-score is credited to raw metrics.

        A feature of one signal goes to it, a correlation break half to each of its two signals, and
        a derived signal's share is split among the metrics it is computed from.
        """
        cached = getattr(self, "attribution_", None)
        if cached is not None:
            return cached
        n_sig = len(self.signals_.signal_names_)
        m1, m2 = self.extractor_.feature_metric_, self.extractor_.feature_metric2_
        to_signal = np.zeros((len(m1), n_sig))
        rows = np.arange(len(m1))
        single = (m1 >= 0) & (m2 < 0)
        to_signal[rows[single], m1[single]] = 1.0
        pair = (m1 >= 0) & (m2 >= 0)
        np.add.at(to_signal, (rows[pair], m1[pair]), 0.5)
        np.add.at(to_signal, (rows[pair], m2[pair]), 0.5)
        to_metric = np.zeros((n_sig, len(self.metric_names_)))
        for s, sources in enumerate(self.signals_.signal_sources_):
            to_metric[s, sources] += 1.0 / len(sources)
        self.attribution_ = to_signal @ to_metric
        return self.attribution_

    def single_detector_alarms(self, z: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Smoothed score and alarms of one detector alone, with its own training-derived threshold.

        The same stages as the ensemble (smoothing, tail threshold at ``alarm_rate`` on its own
        cross-fitted training surprisal, alarm aggregation): a like-for-like single-model baseline.
        """
        j = self.scorers_.index(name)
        thr = tail_threshold(rolling_max(self.train_surprisal_[:, j], self.smooth), self.alarm_rate)
        smoothed = rolling_max(z[:, j], self.smooth)
        return smoothed, self._aggregator().run(smoothed > thr)

    def contributions(
        self, features: np.ndarray, signals: np.ndarray | None = None, *, judged: np.ndarray | None = None
    ) -> tuple[Contribution, ...]:
        """Top raw metrics behind one feature row: share of the squared standardised deviation,
        with each metric's value, training median and unit. ``judged`` are the values practical
        significance was judged on (the stream's recent median; default: ``signals``)."""
        self._check_fitted()
        z = self.standardize(np.asarray(features, dtype=np.float64)[None])[0]
        per_metric = self._metric_attribution(z)
        total = float((z * z).sum())
        if total <= 0:
            return ()
        sig = getattr(self, "significance_", None)
        order = [int(i) for i in np.argsort(-per_metric, kind="stable") if per_metric[i] > 0]
        judged = signals if judged is None else judged
        if sig is not None and judged is not None:
            # The alarm passed the significance gate on the signals that moved enough to matter; naming a
            # harmless co-mover first (disk IOPS 45 instead of 23 while the CPU is pinned) would point the
            # operator, and the runbook, at the wrong thing. Without any such signal, the shares decide.
            moved = [i for i in order if sig.moved(judged, i)]
            if signals is not None:
                # Judged on the recent median, a one-step burst still counts a step after it ended: stress-ng
                # starting up wrote 664 IOPS for a second, then the CPU was pinned, and the alert named disk
                # I/O at 0 IOPS. What leads is what has moved and still has.
                moved = [i for i in moved if sig.moved(signals, i)] or moved
            order = moved or order
        out = []
        for i in order[: self.top_k]:
            value = float(signals[i]) if signals is not None else float("nan")
            unit = sig.units_[i] if sig is not None else ""
            out.append(
                Contribution(
                    self.metric_names_[i], value, float(self.signal_median_[i]), float(per_metric[i] / total), unit
                )
            )
        return tuple(out)

    def explain_frame(self, frame: pd.DataFrame, rows: Sequence[int] | None = None) -> list[tuple[Contribution, ...]]:
        """Contributions for selected rows (default: rows where an alarm is on)."""
        scored = self.score_frame(frame)
        feats = self.features_frame(frame).to_numpy()
        if rows is None:
            rows = np.flatnonzero(scored["alarm"].to_numpy())
        vals = frame[self.metric_names_].to_numpy(dtype=np.float64)
        return [self.contributions(feats[r], vals[r]) for r in rows]

    def new_stream(self) -> PipelineStream:
        from vigil.detectors.stream import PipelineStream

        self._check_fitted()
        return PipelineStream(self)

    def memory_seconds(self) -> float:
        """How long one anomalous step can keep this model alarmed, in seconds: as long as it shapes
        the features, then the score smoothing, then the alarm hold.

        Whoever needs quiet time that does not remember an event (a validation campaign after its own
        training run, an operator after maintenance) waits this long after the event ends.
        """
        self._check_fitted()
        return float((self.extractor_.memory_steps() + self.smooth + self.alarm_hold) * self.step_)

    def _aggregator(self) -> AlarmAggregator:
        return AlarmAggregator(k=self.alarm_k, n=self.alarm_n, hold=self.alarm_hold, suppress=self.alarm_suppress)

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_z_"):
            raise ModelError("the pipeline is not fitted", hint="call fit() or load a saved model")

    # ------------------------------------------------------------ persistence
    def _record_card(
        self,
        frame: pd.DataFrame,
        ts: np.ndarray,
        values: np.ndarray,
        signals: np.ndarray,
        feats: np.ndarray,
        combined: np.ndarray,
    ) -> None:
        digest = hashlib.sha256()
        digest.update(json.dumps(self.metric_names_).encode())
        digest.update(np.ascontiguousarray(ts).tobytes())
        digest.update(np.ascontiguousarray(frame.to_numpy(dtype=np.float64)).tobytes())
        self.data_hash_ = digest.hexdigest()
        self.training_window_ = {
            "start": float(ts[0]),
            "end": float(ts[-1]),
            "start_iso": pd.Timestamp(ts[0], unit="s").isoformat(),
            "end_iso": pd.Timestamp(ts[-1], unit="s").isoformat(),
            "rows": int(len(frame)),
            "grid_steps": int(len(values)),
            "step_seconds": self.step_,
        }
        self.signal_median_ = nan_reduce(np.nanmedian, signals, axis=0)
        self.reference_stats_ = {
            "signals": _column_stats(signals, self.signals_.signal_names_),
            "features": _column_stats(feats, self.feature_names_),
            "train_score_quantiles": {
                str(q): float(to_unit(np.quantile(combined, q))) for q in (0.5, 0.9, 0.99, 0.999)
            },
        }
        self.library_versions_ = _library_versions()

    def model_card(self) -> dict[str, Any]:
        """Everything a registry, a drift monitor or a reviewer needs to know about this model."""
        self._check_fitted()
        return {
            "format": FORMAT,
            "metric_names": self.metric_names_,
            "signal_names": self.signals_.signal_names_,
            "counters": [self.metric_names_[i] for i in self.signals_.counter_idx_],
            "feature_names": self.feature_names_,
            "n_features": len(self.feature_names_),
            "detectors": list(self.detectors),
            "shadow_detectors": [n for n in self.scorers_ if n not in self.detectors],
            "detector_features": {n: len(c) for n, c in self.detector_columns_.items()},
            "weights": {n: float(w) for n, w in zip(self.scorers_, self.weights_, strict=True)},
            "threshold": self.threshold_,
            "threshold_surprisal": self.threshold_z_,
            "params": json_safe(self.get_params()),
            "training_window": self.training_window_,
            "screened_rows": self.screened_rows_,
            "data_hash": self.data_hash_,
            "library_versions": self.library_versions_,
            "reference_stats": self.reference_stats_,
        }

    def save(self, path: Path) -> None:
        """Write the model and its card into the directory ``path`` (created if needed)."""
        import joblib

        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, path / _MODEL_FILE)
        (path / _CARD_FILE).write_text(json.dumps(self.model_card(), indent=1, allow_nan=True))

    @classmethod
    def load(cls, path: Path) -> Self:
        """Load a model saved by :meth:`save`; warns when library versions differ from training."""
        import joblib

        file = Path(path) / _MODEL_FILE
        if not file.exists():
            raise ModelError(f"no saved model at {path}", hint="train one with `vigil train` or call save()")
        try:
            model = joblib.load(file)
        except Exception as exc:  # a truncated or foreign file: one readable error
            raise ModelError(f"cannot read model {file}: {exc}") from None
        if not isinstance(model, cls):
            raise ModelError(f"{file} holds a {type(model).__name__}, not an {cls.__name__}")
        now = _library_versions()
        changed = {k: (v, now.get(k)) for k, v in model.library_versions_.items() if now.get(k) != v}
        if changed:
            warnings.warn(f"model trained with other library versions: {changed}", UserWarning, stacklevel=2)
        return model


def _check_frame(frame: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    if frame.empty or frame.shape[1] == 0:
        raise DataError("the frame is empty")
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise DataError(f"non-numeric columns: {bad[:5]}")
    return frame


def _column_stats(x: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, float]]:
    qs = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    quant = nan_reduce(np.nanquantile, x, axis=0, q=qs)
    mean, std = nan_reduce(np.nanmean, x, axis=0), nan_reduce(np.nanstd, x, axis=0)
    lo, hi = nan_reduce(np.nanmin, x, axis=0), nan_reduce(np.nanmax, x, axis=0)
    miss = np.isnan(x).mean(axis=0)
    out = {}
    for j, n in enumerate(names):
        stats = {"mean": mean[j], "std": std[j], "min": lo[j], "max": hi[j], "missing_frac": miss[j]}
        stats.update({f"q{int(q * 100):02d}": quant[k, j] for k, q in enumerate(qs)})
        out[n] = {k: (None if not np.isfinite(v) else float(v)) for k, v in stats.items()}
    return out


def _library_versions() -> dict[str, str]:
    import joblib
    import sklearn
    import torch

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
        "joblib": joblib.__version__,
    }
