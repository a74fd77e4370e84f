"""The rule that decides whether a challenger replaces the champion.

Both models are scored on the same, most recent holdout (the labelled test half for benchmark
datasets, the last validation window for archive data), so the comparison is like for like; the
metrics recorded at training time came from different windows and are shown, never compared.

With labels (the holdout has at least one anomalous step), in order:

0. it must not alarm on more than ``max_alert_rate`` (20 %) of steps, or more than the champion:
   one alarm run covering the whole holdout scores event F1 = 1 with zero false runs;
1. the challenger's event-level F1 must be at least the champion's minus ``f1_tolerance``;
2. its false runs (alarm runs that overlap no anomaly) must not exceed the champion's by more than
   ``false_run_slack`` (x1.25 +1 by default): a model that finds one more event by paging people
   twice as often is not better;
3. then it wins if its F1 is higher by ``min_gain``, or, at equal F1 (within the tolerance), if it
   raises fewer false runs or has a higher AUC-PR.

Without labels:

1. its alert rate must stay within ``alert_budget`` (or not exceed the champion's, if the champion
   is already over budget);
2. it wins if its calibration drift on the holdout is lower than the champion's by ``min_gain``:
   the challenger has seen more recent data, so its scores should be calibrated for it; a
   champion that still scores the recent data like its training data keeps its place.

A challenger always wins when there is no champion or the champion cannot score the holdout (its
inputs no longer exist, its bundle is corrupt).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


@dataclass(frozen=True)
class SelectionRule:
    f1_tolerance: float = 0.01
    min_gain: float = 0.01
    false_run_slack: float = 1.25
    alert_budget: float = 0.01
    # Event metrics reward one alarm run that covers everything (it "detects" every event with no
    # false run); a model alarming on a fifth of all steps is broken whatever its F1.
    max_alert_rate: float = 0.2

    def decide(self, champion: Mapping[str, float] | None, challenger: Mapping[str, float]) -> Decision:
        if champion is None:
            return Decision(True, "no champion yet")
        if not champion:
            return Decision(True, "the champion cannot score the holdout")
        if _has(challenger, "event_f1") and _has(champion, "event_f1"):
            return self._labelled(champion, challenger)
        return self._unlabelled(champion, challenger)

    def _labelled(self, champ: Mapping[str, float], chall: Mapping[str, float]) -> Decision:
        rate_c, rate_n = champ.get("alert_rate", math.nan), chall.get("alert_rate", math.nan)
        limit = max(self.max_alert_rate, rate_c) if _num(rate_c) else self.max_alert_rate
        if _num(rate_n) and rate_n > limit:
            return Decision(False, f"alarms on {rate_n:.0%} of steps (limit {limit:.0%})")
        f1_c, f1_n = champ["event_f1"], chall["event_f1"]
        if f1_n < f1_c - self.f1_tolerance:
            return Decision(False, f"event F1 {f1_n:.3f} below champion's {f1_c:.3f}")
        fr_c, fr_n = champ.get("false_runs", math.nan), chall.get("false_runs", math.nan)
        if _num(fr_c) and _num(fr_n) and fr_n > fr_c * self.false_run_slack + 1:
            return Decision(False, f"{fr_n:.0f} false runs vs champion's {fr_c:.0f}")
        if f1_n >= f1_c + self.min_gain:
            return Decision(True, f"event F1 {f1_n:.3f} > champion's {f1_c:.3f}")
        if _num(fr_c) and _num(fr_n) and fr_n < fr_c:
            return Decision(True, f"same event F1, fewer false runs ({fr_n:.0f} < {fr_c:.0f})")
        ap_c, ap_n = champ.get("auc_pr", math.nan), chall.get("auc_pr", math.nan)
        if _num(ap_c) and _num(ap_n) and ap_n >= ap_c + self.min_gain:
            return Decision(True, f"same event F1, AUC-PR {ap_n:.3f} > {ap_c:.3f}")
        return Decision(False, f"not better: event F1 {f1_n:.3f} vs {f1_c:.3f}")

    def _unlabelled(self, champ: Mapping[str, float], chall: Mapping[str, float]) -> Decision:
        rate_c, rate_n = champ.get("alert_rate", math.nan), chall.get("alert_rate", math.nan)
        budget = max(self.alert_budget, rate_c) if _num(rate_c) else self.alert_budget
        if _num(rate_n) and rate_n > budget:
            return Decision(False, f"alert rate {rate_n:.4f} over budget {budget:.4f}")
        cd_c, cd_n = champ.get("calibration_drift", math.nan), chall.get("calibration_drift", math.nan)
        if not _num(cd_n):
            return Decision(False, "challenger has no calibration measurement")
        if not _num(cd_c) or cd_n <= cd_c - self.min_gain:
            return Decision(True, f"calibration drift {cd_n:.3f} vs champion's {cd_c:.3f}")
        return Decision(False, f"calibration drift {cd_n:.3f} not below champion's {cd_c:.3f}")


def _num(v: float | None) -> bool:
    return v is not None and not math.isnan(v)


def _has(m: Mapping[str, float], key: str) -> bool:
    return _num(m.get(key))
