"""Per-metric temporal features, computed in batch or one step at a time with equal results.

Each windowed feature is one statistic of the trailing window that ends at the current step; the
batch path (:meth:`FeatureExtractor.transform`) applies it to ``sliding_window_view`` chunks, the
incremental path (:class:`FeatureStream`) to its ring buffer, with the same function. Recursive
features (EWMA, staleness) share one step function. See ``docs/features.md`` for every feature.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.errors import DataError
from vigil.features import windows as W
from vigil.features.derived import role_pairs
from vigil.features.seasonality import SeasonalProfile
from vigil.features.windows import nan_reduce

# Per-metric kinds, in the order their blocks appear in the feature vector.
PER_METRIC_KINDS = (
    "level",
    "diff",
    "mean_dev_short",
    "std_short",
    "mean_dev_long",
    "std_long",
    "min_long",
    "max_long",
    "robust_z",
    "p10",
    "p90",
    "slope",
    "ewma_res_fast",
    "ewma_res_slow",
    "seasonal_res",
    "stale",
    "lag",
)
CROSS_KINDS = ("corr_break", "missing_frac")
ALL_KINDS = PER_METRIC_KINDS + CROSS_KINDS
# What the detectors see by default: level plus short/long deviation and spread. On SMD and ASD this
# set ranked anomalies best; adding the other kinds diluted Isolation Forest and PCA (see
# docs/benchmarks.md), so they are computed only when asked for.
DEFAULT_KINDS = (
    "level",
    "mean_dev_short",
    "std_short",
    "mean_dev_long",
    "std_long",
    "missing_frac",
)


@dataclass(frozen=True)
class _Windowed:
    width: int
    stat: Callable[[np.ndarray], np.ndarray]


class FeatureExtractor:
    """Learns what it needs from history (seasonal profiles, correlated pairs) and computes features.

    Parameters
    ----------
    kinds : sequence of str
        Feature kinds to compute (see :data:`ALL_KINDS` and ``docs/features.md``).
    short_window, long_window, robust_window : int
        Window lengths in steps.
    lags : int
        Window length of the ``lag`` block (lags ``1 .. lags - 1``; lag 0 is ``level``).
    ewma_fast, ewma_slow : float
        Smoothing factors of the two EWMA baselines.
    max_pairs : int
        Most metric pairs whose rolling correlation is tracked.
    min_pair_corr : float
        Least absolute training correlation for a pair to be tracked.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, np.nan], [4.0, 8.0]])
    >>> fx = FeatureExtractor(kinds=("level", "diff")).fit(x, np.arange(4) * 60.0, ["a", "b"])
    >>> fx.feature_names_
    ['a|level', 'b|level', 'a|diff', 'b|diff']
    >>> fx.transform(x, np.arange(4) * 60.0)[2].tolist()
    [3.0, nan, 1.0, nan]
    """

    def __init__(
        self,
        kinds: Sequence[str] = DEFAULT_KINDS,
        short_window: int = 5,
        long_window: int = 30,
        robust_window: int = 30,
        lags: int = 8,
        ewma_fast: float = 0.3,
        ewma_slow: float = 0.03,
        max_pairs: int = 8,
        min_pair_corr: float = 0.6,
    ) -> None:
        self.kinds = kinds
        self.short_window = short_window
        self.long_window = long_window
        self.robust_window = robust_window
        self.lags = lags
        self.ewma_fast = ewma_fast
        self.ewma_slow = ewma_slow
        self.max_pairs = max_pairs
        self.min_pair_corr = min_pair_corr

    # ------------------------------------------------------------------ fit
    def fit(self, values: np.ndarray, ts: np.ndarray, metric_names: Sequence[str]) -> FeatureExtractor:
        values = _as_2d(values)
        unknown = set(self.kinds) - set(ALL_KINDS)
        if unknown:
            raise DataError(f"unknown feature kinds {sorted(unknown)}", hint=f"choose from {list(ALL_KINDS)}")
        if values.shape[1] != len(metric_names):
            raise DataError(f"{values.shape[1]} columns but {len(metric_names)} metric names")
        self.metric_names_ = list(metric_names)
        self.kinds_ = tuple(k for k in ALL_KINDS if k in self.kinds)
        std = nan_reduce(np.nanstd, values, axis=0)
        # A MAD of zero (flat window) would make any step an infinite z-score; floor it at a small
        # fraction of the metric's overall spread instead.
        self.robust_floor_ = np.where(np.isfinite(std), 0.01 * std, 0.0) + 1e-9
        self.seasonal_ = SeasonalProfile().fit(values, np.asarray(ts, dtype=np.float64))
        self.pairs_, self.pair_corr_ = self._choose_pairs(values)
        self.width_ = max(2, self.short_window, self.long_window, self.robust_window, self.lags)
        self._build_names()
        return self

    def _choose_pairs(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if "corr_break" not in self.kinds_ or values.shape[1] < 2:
            return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
        ok = ~np.isnan(values).any(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):  # a flat column has no correlation: NaN
            c = np.corrcoef(values[ok], rowvar=False) if ok.sum() > 2 else np.full((values.shape[1],) * 2, np.nan)
        iu = np.triu_indices(values.shape[1], k=1)
        corr = np.nan_to_num(c[iu], nan=0.0)
        # Near-identical pairs (|r| > 0.995) are usually one quantity counted twice; a break
        # between them is rarer and louder than the interesting breaks, so skip them.
        eligible = (np.abs(corr) >= self.min_pair_corr) & (np.abs(corr) <= 0.995)
        order = np.argsort(-np.abs(corr) * eligible, kind="stable")[: self.max_pairs]
        order = order[eligible[order]]
        chosen = [(int(iu[0][k]), int(iu[1][k])) for k in order]
        # Pairs operators watch by habit (CPU vs memory, CPU vs requests) are kept whatever their r.
        forced = [p for p in role_pairs(self.metric_names_) if p not in chosen and p[::-1] not in chosen]
        chosen = (forced + chosen)[: max(self.max_pairs, len(forced))]
        pairs = np.array(chosen, dtype=np.int64).reshape(-1, 2)
        full = np.nan_to_num(c, nan=0.0)
        return pairs, full[pairs[:, 0], pairs[:, 1]] if len(pairs) else np.zeros(0)

    def _build_names(self) -> None:
        names: list[str] = []
        primary: list[int] = []
        secondary: list[int] = []
        groups: list[str] = []
        m = len(self.metric_names_)
        for kind in self.kinds_:
            if kind == "lag":
                for k in range(1, self.lags):
                    names += [f"{n}|lag_{k}" for n in self.metric_names_]
                    primary += list(range(m))
                    secondary += [-1] * m
                    groups += [kind] * m
            elif kind in PER_METRIC_KINDS:
                label = self._label(kind)
                names += [f"{n}|{label}" for n in self.metric_names_]
                primary += list(range(m))
                secondary += [-1] * m
                groups += [kind] * m
            elif kind == "corr_break":
                for i, j in self.pairs_:
                    names.append(f"{self.metric_names_[i]}~{self.metric_names_[j]}|corr_break_{self.long_window}")
                    primary.append(int(i))
                    secondary.append(int(j))
                    groups.append(kind)
            elif kind == "missing_frac":
                names.append("*|missing_frac")
                primary.append(-1)
                secondary.append(-1)
                groups.append(kind)
        self.feature_names_ = names
        # The kind key ("std_short", "lag", ...) of every feature, for selecting blocks by kind.
        self.feature_group_ = groups
        self.feature_metric_ = np.array(primary, dtype=np.int64)
        self.feature_metric2_ = np.array(secondary, dtype=np.int64)
        self.feature_kind_ = [n.rsplit("|", 1)[1] for n in names]

    def _label(self, kind: str) -> str:
        return {
            "mean_dev_short": f"mean_dev_{self.short_window}",
            "std_short": f"std_{self.short_window}",
            "mean_dev_long": f"mean_dev_{self.long_window}",
            "std_long": f"std_{self.long_window}",
            "min_long": f"min_{self.long_window}",
            "max_long": f"max_{self.long_window}",
            "robust_z": f"robust_z_{self.robust_window}",
            "p10": f"p10_{self.robust_window}",
            "p90": f"p90_{self.robust_window}",
            "slope": f"slope_{self.long_window}",
        }.get(kind, kind)

    # ------------------------------------------------------------ windowed stats
    def _windowed(self, kind: str) -> _Windowed:
        s, lw, r = self.short_window, self.long_window, self.robust_window
        floor = self.robust_floor_

        def robust_z(a: np.ndarray) -> np.ndarray:
            med = W.w_median(a)
            mad = W.w_mad(a, med)
            return (a[..., -1] - med) / (W.MAD_TO_STD * np.nan_to_num(mad) + floor)

        table = {
            "level": _Windowed(1, lambda a: a[..., -1]),
            "diff": _Windowed(2, lambda a: a[..., -1] - a[..., -2]),
            "mean_dev_short": _Windowed(s, lambda a: a[..., -1] - W.w_mean(a)),
            "std_short": _Windowed(s, W.w_std),
            "mean_dev_long": _Windowed(lw, lambda a: a[..., -1] - W.w_mean(a)),
            "std_long": _Windowed(lw, W.w_std),
            "min_long": _Windowed(lw, W.w_min),
            "max_long": _Windowed(lw, W.w_max),
            "robust_z": _Windowed(r, robust_z),
            "p10": _Windowed(r, lambda a: W.w_quantile(a, 0.1)),
            "p90": _Windowed(r, lambda a: W.w_quantile(a, 0.9)),
            "slope": _Windowed(lw, W.w_slope),
        }
        return table[kind]

    # ---------------------------------------------------------------- batch
    def transform(self, values: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Features of every row, ``(T, n_features)``; row ``t`` uses rows ``<= t`` only."""
        self._check_fitted()
        values = _as_2d(values)
        ts = np.asarray(ts, dtype=np.float64)
        if values.shape[1] != len(self.metric_names_):
            raise DataError(f"expected {len(self.metric_names_)} columns, got {values.shape[1]}")
        blocks: list[np.ndarray] = []
        ewma: dict[float, np.ndarray] = {}
        stale: np.ndarray | None = None
        if {"ewma_res_fast", "ewma_res_slow", "stale"} & set(self.kinds_):
            ewma, stale = self._recursive_batch(values)
        for kind in self.kinds_:
            if kind == "lag":
                for k in range(1, self.lags):
                    lagged = np.full(values.shape, np.nan)
                    lagged[k:] = values[:-k] if k < len(values) else lagged[k:]
                    blocks.append(lagged)
            elif kind == "ewma_res_fast":
                blocks.append(ewma[self.ewma_fast])
            elif kind == "ewma_res_slow":
                blocks.append(ewma[self.ewma_slow])
            elif kind == "stale":
                blocks.append(stale)
            elif kind == "seasonal_res":
                blocks.append(values - self.seasonal_.expected(ts))
            elif kind == "corr_break":
                if len(self.pairs_):
                    i, j = self.pairs_[:, 0], self.pairs_[:, 1]
                    blocks.append(W.rolling_pair(values[:, i], values[:, j], self.long_window) - self.pair_corr_)
            elif kind == "missing_frac":
                blocks.append(np.isnan(values).mean(axis=1, keepdims=True))
            else:
                spec = self._windowed(kind)
                blocks.append(W.rolling(values, spec.width, spec.stat))
        if not blocks:
            return np.zeros((len(values), 0))
        return np.concatenate(blocks, axis=1)

    def _recursive_batch(self, values: np.ndarray) -> tuple[dict[float, np.ndarray], np.ndarray]:
        state = _RecursiveState.fresh(values.shape[1], (self.ewma_fast, self.ewma_slow))
        res = {a: np.empty(values.shape) for a in state.ewma}
        stale = np.empty(values.shape)
        for t in range(len(values)):
            step_res, step_stale = state.step(values[t])
            for a in res:
                res[a][t] = step_res[a]
            stale[t] = step_stale
        return res, stale

    # ----------------------------------------------------------- incremental
    def memory_steps(self) -> int:
        """Steps until a row stops shaping the features: the widest window, or, for the EWMA residual
        kinds, the steps until the row's weight falls under 1 %."""
        self._check_fitted()
        steps = self.width_
        for kind, alpha in (("ewma_res_fast", self.ewma_fast), ("ewma_res_slow", self.ewma_slow)):
            if kind in self.kinds_:
                steps = max(steps, math.ceil(math.log(0.01) / math.log(1.0 - alpha)))
        return steps

    def new_stream(self) -> FeatureStream:
        """A fresh incremental extractor (as if no sample had been seen)."""
        self._check_fitted()
        return FeatureStream(self)

    def _check_fitted(self) -> None:
        if not hasattr(self, "feature_names_"):
            raise DataError("the feature extractor is not fitted", hint="call fit() first")


class _RecursiveState:
    """EWMA baselines and staleness counters, advanced one row at a time (batch and stream alike)."""

    def __init__(self, ewma: dict[float, np.ndarray], stale: np.ndarray) -> None:
        self.ewma = ewma
        self.stale = stale

    @classmethod
    def fresh(cls, m: int, alphas: Sequence[float]) -> _RecursiveState:
        return cls({float(a): np.full(m, np.nan) for a in alphas}, np.zeros(m))

    def step(self, x: np.ndarray) -> tuple[dict[float, np.ndarray], np.ndarray]:
        missing = np.isnan(x)
        residuals = {}
        for a, e in self.ewma.items():
            # The residual is taken against the baseline *before* this step, i.e. a one-step forecast error.
            residuals[a] = x - e
            self.ewma[a] = np.where(np.isnan(e), x, np.where(missing, e, (1.0 - a) * e + a * x))
        self.stale = np.where(missing, self.stale + 1.0, 0.0)
        return residuals, self.stale.copy()


class FeatureStream:
    """Incremental twin of :meth:`FeatureExtractor.transform`: one row in, one feature row out."""

    def __init__(self, extractor: FeatureExtractor) -> None:
        self.fx = extractor
        m = len(extractor.metric_names_)
        self._buf = np.full((extractor.width_, m), np.nan)
        self._rec = _RecursiveState.fresh(m, (extractor.ewma_fast, extractor.ewma_slow))
        self._specs = {
            k: extractor._windowed(k)
            for k in extractor.kinds_
            if k in PER_METRIC_KINDS and k not in {"lag", "ewma_res_fast", "ewma_res_slow", "stale", "seasonal_res"}
        }

    def update(self, ts: float, values: np.ndarray) -> np.ndarray:
        """Advance by one step with the raw row ``values`` ``(M,)`` at unix time ``ts``."""
        fx = self.fx
        x = np.asarray(values, dtype=np.float64)
        buf = self._buf
        buf[:-1] = buf[1:]
        buf[-1] = x
        res, stale = self._rec.step(x)
        out: list[np.ndarray] = []
        for kind in fx.kinds_:
            if kind == "lag":
                for k in range(1, fx.lags):
                    out.append(buf[-1 - k])
            elif kind == "ewma_res_fast":
                out.append(res[fx.ewma_fast])
            elif kind == "ewma_res_slow":
                out.append(res[fx.ewma_slow])
            elif kind == "stale":
                out.append(stale)
            elif kind == "seasonal_res":
                out.append(x - fx.seasonal_.expected(float(ts)))
            elif kind == "corr_break":
                if len(fx.pairs_):
                    lw = fx.long_window
                    win = buf[-lw:].T
                    c = W.w_corr(win[fx.pairs_[:, 0]][None], win[fx.pairs_[:, 1]][None])[0]
                    out.append(c - fx.pair_corr_)
            elif kind == "missing_frac":
                out.append(np.array([np.isnan(x).mean()]))
            else:
                spec = self._specs[kind]
                out.append(spec.stat(buf[-spec.width :].T[None])[0])
        return np.concatenate(out) if out else np.zeros(0)

    def state_dict(self) -> dict[str, Any]:
        return {
            "buf": self._buf.copy(),
            "ewma": {a: e.copy() for a, e in self._rec.ewma.items()},
            "stale": self._rec.stale.copy(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._buf = np.array(state["buf"], dtype=np.float64)
        self._rec = _RecursiveState({float(a): np.array(e) for a, e in state["ewma"].items()}, np.array(state["stale"]))


def _as_2d(values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(f"expected a 2-D array of shape (steps, metrics), got shape {arr.shape}")
    return arr
