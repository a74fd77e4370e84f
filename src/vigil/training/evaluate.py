"""Per-fold metrics: what can be measured without labels, and the bench metrics where labels exist.

Without labels (the archive) a fold reports:

* ``alert_rate`` / ``above_rate``: share of validation steps that alarm / exceed the threshold.
  The calibrated threshold targets a rate, so a fold far from it means the future looks unlike the
  past the model learned from.
* ``calibration_drift``: KS statistic between the model's out-of-sample calibrated scores on its
  training data (see :func:`reference_scores`) and its scores on the validation window.
  Calibration maps training scores to [0, 1]; if new data is scored like training data the two
  distributions match and this stays near 0.
* ``score_stability``: Spearman rank correlation, on the same validation rows, between this fold's
  model and the previous fold's (NaN for the first). Near 1: one more stretch of data barely
  changes which steps the model finds unusual; low values mean the model is still learning.
* ``score_p50`` / ``score_p99``.

With labels (benchmark test halves, fault-injection runs) it adds the bench metrics of
:mod:`vigil.evaluation` (event-level precision/recall/F1, AUC-PR, false runs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from vigil.contracts import ScoringModel

# Enough training-tail rows to estimate a score distribution; scoring all of them would double a fold's cost.
CALIBRATION_ROWS = 5000


def unlabelled_metrics(
    valid_scores: pd.DataFrame,
    reference: np.ndarray | None = None,
    previous_valid_scores: pd.DataFrame | None = None,
) -> dict[str, float]:
    s = _finite(valid_scores["score"])
    out: dict[str, float] = {
        "alert_rate": float(np.mean(valid_scores["alarm"].to_numpy(dtype=bool))),
        "above_rate": float(np.mean(valid_scores["above_threshold"].to_numpy(dtype=bool))),
        "score_p50": float(np.quantile(s, 0.5)) if s.size else float("nan"),
        "score_p99": float(np.quantile(s, 0.99)) if s.size else float("nan"),
        "calibration_drift": float("nan"),
        "score_stability": float("nan"),
    }
    if reference is not None:
        t = np.asarray(reference, dtype=np.float64)
        t = t[np.isfinite(t)]
        if t.size and s.size:
            out["calibration_drift"] = float(stats.ks_2samp(t, s).statistic)
    if previous_valid_scores is not None:
        a = previous_valid_scores["score"].to_numpy(dtype=np.float64)
        b = valid_scores["score"].to_numpy(dtype=np.float64)
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() > 2 and np.std(a[ok]) > 0 and np.std(b[ok]) > 0:
            out["score_stability"] = float(stats.spearmanr(a[ok], b[ok]).statistic)
    return out


def labelled_metrics(scores: pd.DataFrame, labels: np.ndarray) -> dict[str, float]:
    """Bench metrics on rows with known labels (``labels`` 0/1; -1 rows are skipped)."""
    labels = np.asarray(labels)
    known = labels >= 0
    if not known.any() or labels[known].max() < 1:
        return {}
    y = labels[known].astype(np.int8)
    score = scores["score"].to_numpy(dtype=np.float64)[known]
    alarm = scores["alarm"].to_numpy(dtype=bool)[known]
    return bench_metrics(y, score, alarm)


def bench_metrics(labels: np.ndarray, score: np.ndarray, alarm: np.ndarray) -> dict[str, float]:
    from vigil.evaluation import evaluate

    return {k: float(v) for k, v in evaluate(labels, score, alarm).items()}


def reference_scores(model: ScoringModel, train: pd.DataFrame) -> np.ndarray:
    """Calibrated scores of the training data as the model would score *unseen* data like it.

    In-sample scores are not that: LOF, OCSVM and the autoencoder score their own training rows
    as more normal than any new row, so a KS test against them flags every new window. The
    pipeline keeps cross-fitted (out-of-sample) per-detector surprisal of its training data in
    ``train_surprisal_``; combined and smoothed as in scoring, it is the right reference. Models
    without it fall back to in-sample scores of the last ``CALIBRATION_ROWS`` training rows.
    """
    z = getattr(model, "train_surprisal_", None)
    combine = getattr(model, "combine_surprisal", None)
    if z is not None and callable(combine):
        from vigil.detectors.combination import to_unit
        from vigil.detectors.pipeline import rolling_max

        return np.asarray(to_unit(rolling_max(combine(np.asarray(z)), int(getattr(model, "smooth", 1)))))
    return model.score_frame(train.iloc[-CALIBRATION_ROWS:])["score"].to_numpy(dtype=np.float64)


def _finite(values: pd.Series) -> np.ndarray:
    x = values.to_numpy(dtype=np.float64)
    return x[np.isfinite(x)]
