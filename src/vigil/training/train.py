"""``vigil train`` orchestration: data -> time-ordered CV -> final fit -> registry -> selection.

Per entity:

1. cross-validate on expanding windows with a gap (:mod:`vigil.training.cv`), recording the
   unlabelled fold metrics and, where labels exist, the bench metrics (:mod:`vigil.training.evaluate`);
2. fit the final model on the training data (the train split of a benchmark dataset: its test
   half stays unseen, so the ``holdout_*`` metrics are honest; the whole window for the archive);
3. fit the drift reference (:class:`vigil.drift.DriftReference`) on the same data and its scores;
4. register the bundle as a new version, alias it ``challenger``;
5. score the holdout with the current champion too and apply :class:`SelectionRule`; promote when
   it says so (``promote="auto"``), always or never.

Deterministic: same data + same seed gives the same scores; the data's SHA-256 is recorded.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from vigil.contracts import ScoringModel
from vigil.drift import DriftReference
from vigil.errors import DataError, ModelError, NotFound
from vigil.jsonsafe import json_safe
from vigil.registry import ModelRegistry, model_name
from vigil.training import evaluate
from vigil.training.cv import folds
from vigil.training.data import EntityData, data_hash
from vigil.training.selection import Decision, SelectionRule

log = logging.getLogger(__name__)

ModelFactory = Callable[[int, float, Mapping[str, Any]], ScoringModel]
Progress = Callable[[str, str], None]  # (entity, stage just finished)

PROMOTE_POLICIES = ("auto", "always", "never")
# Training rows stored with the model and re-scored at every load (registry.bundle.check_golden):
# enough to warm up the feature windows and reach a few scored steps, small enough to score in ms.
GOLDEN_ROWS = 240


def default_factory(seed: int, step_s: float, params: Mapping[str, Any]) -> ScoringModel:
    from vigil.detectors.pipeline import AnomalyPipeline

    return AnomalyPipeline(seed=seed, step_seconds=step_s, **dict(params))


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    n_folds: int = 3
    gap: int = 60  # steps between a fold's training end and its validation start
    min_train_fraction: float = 0.5  # unlabelled data: first fold trains on this share
    promote: str = "auto"  # "auto" (selection rule), "always", "never"
    drift_window: int = 1440
    model_params: dict[str, Any] = field(default_factory=dict)
    rule: SelectionRule = field(default_factory=SelectionRule)

    def stages(self) -> int:
        """Progress steps per entity: one per fold, final fit, holdout, register."""
        return self.n_folds + 3


@dataclass(frozen=True)
class TrainResult:
    entity: str
    name: str
    version: str
    promoted: bool
    decision: str
    metrics: dict[str, float]
    folds: list[dict[str, float]]
    champion_metrics: dict[str, float] | None
    data_hash: str
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def train_entity(
    registry: ModelRegistry,
    data: EntityData,
    config: TrainConfig,
    *,
    factory: ModelFactory = default_factory,
    progress: Progress | None = None,
) -> TrainResult:
    started = time.monotonic()
    step = progress or (lambda _entity, _stage: None)

    def new_model() -> ScoringModel:
        return factory(config.seed, data.step_s, {**data.model_params, **config.model_params})

    timeline = data.timeline
    labels = data.timeline_labels
    min_train = len(data.train) if data.holdout is not None else int(len(timeline) * config.min_train_fraction)
    fold_list = folds(len(timeline), n_folds=config.n_folds, gap=config.gap, min_train=min_train)

    fold_metrics: list[dict[str, float]] = []
    previous: ScoringModel | None = None
    for fold in fold_list:
        train_part, valid_part = timeline.iloc[fold.train], timeline.iloc[fold.valid]
        model = new_model().fit(train_part)
        valid_scores = model.score_frame(valid_part)
        metrics = evaluate.unlabelled_metrics(
            valid_scores,
            evaluate.reference_scores(model, train_part),
            previous.score_frame(valid_part) if previous is not None else None,
        )
        if labels is not None:
            metrics.update(evaluate.labelled_metrics(valid_scores, labels[fold.valid]))
        metrics["train_rows"] = float(len(train_part))
        metrics["valid_rows"] = float(len(valid_part))
        fold_metrics.append(metrics)
        previous = model
        step(data.entity, f"fold {fold.index + 1}/{len(fold_list)}")

    final = new_model().fit(data.train)
    ref_scores = evaluate.reference_scores(final, data.train)
    reference = build_drift_reference(
        final, data.train, config.drift_window, scores=ref_scores, meta={"entity": data.entity, "source": data.source}
    )
    window = reference.window
    step(data.entity, "final fit")

    # The challenger's holdout numbers come from a model that never saw the holdout: the final
    # model for a benchmark split, the last fold's model for archive data (the final one trained on all of it).
    if data.holdout is not None:
        holdout = data.holdout
        holdout_labels = data.holdout_labels
        challenger_eval = _holdout_metrics(final.score_frame(holdout), ref_scores, holdout_labels)
    else:
        last = fold_list[-1]
        holdout = timeline.iloc[last.valid]
        holdout_labels = None
        challenger_eval = {k: v for k, v in fold_metrics[-1].items() if not k.endswith("_rows")}
    champion_eval = _champion_metrics(registry, data.entity, holdout, holdout_labels)
    decision = _decide(config, champion_eval, challenger_eval)
    step(data.entity, "holdout")

    summary = {f"cv_{k}": _nanmean([f.get(k, math.nan) for f in fold_metrics]) for k in _keys(fold_metrics)}
    summary.update({f"holdout_{k}": v for k, v in challenger_eval.items()})
    digest = data_hash(data.train)
    params = {
        "seed": config.seed,
        "n_folds": config.n_folds,
        "gap": config.gap,
        "source": data.source,
        "train_rows": len(data.train),
        "holdout_rows": 0 if holdout is None else len(holdout),
        "drift_window": window,
        **{f"model.{k}": v for k, v in config.model_params.items()},
    }
    info = registry.log_model(
        data.entity,
        final,
        params=params,
        metrics=summary,
        fold_metrics=fold_metrics,
        drift_reference=reference.to_dict(),
        training={
            "window": data.window(),
            "holdout_hash": data_hash(holdout, holdout_labels) if holdout is not None else "",
            "selection": {"promote": decision.promote, "reason": decision.reason, "policy": config.promote},
            "champion_holdout_metrics": champion_eval,
            "challenger_holdout_metrics": challenger_eval,
        },
        data_hash=digest,
        golden=data.train.iloc[-GOLDEN_ROWS:],
    )
    registry.set_challenger(info.name, info.version)
    if decision.promote:
        registry.promote(info.name, info.version)
    step(data.entity, "registered")
    return TrainResult(
        entity=data.entity,
        name=info.name,
        version=info.version,
        promoted=decision.promote,
        decision=decision.reason,
        metrics=summary,
        folds=fold_metrics,
        champion_metrics=champion_eval,
        data_hash=digest,
        duration_s=time.monotonic() - started,
    )


def build_drift_reference(
    model: ScoringModel,
    train: pd.DataFrame,
    window: int,
    *,
    scores: np.ndarray | None = None,
    meta: Mapping[str, Any] | None = None,
) -> DriftReference:
    """The drift reference stored with a model: raw training signals and out-of-sample scores.

    The window shrinks to a quarter of the training rows for short training sets so the natural
    drift levels are measured over several windows rather than one.
    """
    ref_scores = evaluate.reference_scores(model, train) if scores is None else scores
    return DriftReference.fit(
        {str(c): train[c].to_numpy(dtype=np.float64) for c in train.columns},
        window=max(10, min(window, len(train) // 4)),
        scores=ref_scores,
        # Above-threshold, not alarms: alarm aggregation needs the stream, the reference rate is a level.
        alarms=ref_scores > float(model.threshold_),
        meta=meta,
    )


def train_many(
    registry: ModelRegistry,
    datasets: Iterable[EntityData],
    config: TrainConfig,
    *,
    factory: ModelFactory = default_factory,
    progress: Progress | None = None,
) -> list[TrainResult]:
    return [train_entity(registry, d, config, factory=factory, progress=progress) for d in datasets]


def _decide(config: TrainConfig, champion: dict[str, float] | None, challenger: dict[str, float]) -> Decision:
    if config.promote not in PROMOTE_POLICIES:
        raise DataError(f"unknown promote policy {config.promote!r}", hint=f"use one of {', '.join(PROMOTE_POLICIES)}")
    decision = config.rule.decide(champion, challenger)
    if config.promote == "always":
        return Decision(True, f"promoted by policy 'always' (rule: {decision.reason})")
    if config.promote == "never":
        return Decision(False, f"kept as challenger by policy 'never' (rule: {decision.reason})")
    return decision


def _holdout_metrics(scores: pd.DataFrame, reference_scores: np.ndarray, labels: np.ndarray | None) -> dict[str, float]:
    metrics = evaluate.unlabelled_metrics(scores, reference_scores)
    if labels is not None:
        metrics.update(evaluate.labelled_metrics(scores, labels))
    return metrics


def _champion_metrics(
    registry: ModelRegistry, entity: str, holdout: pd.DataFrame, labels: np.ndarray | None
) -> dict[str, float] | None:
    """The current champion's metrics on the challenger's holdout; None when there is no champion.

    A champion that cannot score the holdout gets no metrics, which the rule reads as "replace it".
    """
    name = model_name(entity)
    try:
        if registry.champion_version(name) is None:
            return None
    except Exception:  # noqa: BLE001 - a registry without this model yet
        return None
    try:
        info, champion = registry.load(name)
        scores = champion.score_frame(holdout)
        ref = registry.bundle_json(name, info.version, "drift_reference.json")
    except (ModelError, NotFound, DataError, KeyError, ValueError) as exc:
        log.warning("%s: champion cannot score the holdout (%s); the challenger replaces it", name, exc)
        return {}
    metrics = evaluate.unlabelled_metrics(scores)
    # The champion's training-score sketch stands in for its training tail (not kept in the bundle).
    quantiles = (ref.get("score") or {}).get("reference", {}).get("quantiles")
    s = scores["score"].to_numpy(dtype=np.float64)
    s = s[np.isfinite(s)]
    if quantiles and s.size:
        metrics["calibration_drift"] = float(stats.ks_2samp(np.asarray(quantiles), s).statistic)
    if labels is not None:
        metrics.update(evaluate.labelled_metrics(scores, labels))
    return metrics


def _keys(rows: list[dict[str, float]]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def _nanmean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else math.nan
