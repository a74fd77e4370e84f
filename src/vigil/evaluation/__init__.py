"""Evaluation without point adjustment: point-wise, event-level and ranking metrics."""

from vigil.evaluation.metrics import (
    alert_runs,
    auc_pr,
    evaluate,
    event_metrics,
    label_events,
    macro_average,
    point_metrics,
)

__all__ = ["alert_runs", "auc_pr", "evaluate", "event_metrics", "label_events", "macro_average", "point_metrics"]
