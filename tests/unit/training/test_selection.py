from __future__ import annotations

import math

from vigil.training import SelectionRule

RULE = SelectionRule()


def test_first_model_and_broken_champion_are_replaced() -> None:
    assert RULE.decide(None, {"event_f1": 0.1}).promote
    assert RULE.decide({}, {"event_f1": 0.1}).promote


def test_labelled_rule() -> None:
    champ = {"event_f1": 0.50, "false_runs": 4, "auc_pr": 0.40}
    assert RULE.decide(champ, {"event_f1": 0.60, "false_runs": 4, "auc_pr": 0.40}).promote
    assert not RULE.decide(champ, {"event_f1": 0.45, "false_runs": 0, "auc_pr": 0.90}).promote
    # one more event found by paging people far more often is not better
    assert not RULE.decide(champ, {"event_f1": 0.60, "false_runs": 12, "auc_pr": 0.40}).promote
    # equal F1: fewer false runs, or better ranking, wins; otherwise the champion stays
    assert RULE.decide(champ, {"event_f1": 0.50, "false_runs": 2, "auc_pr": 0.40}).promote
    assert RULE.decide(champ, {"event_f1": 0.50, "false_runs": 4, "auc_pr": 0.45}).promote
    assert not RULE.decide(champ, {"event_f1": 0.50, "false_runs": 4, "auc_pr": 0.40}).promote
    # alarming everywhere makes one run that "detects" every event: rejected (seen on SMD 1-4)
    assert not RULE.decide(champ, {"event_f1": 1.0, "false_runs": 0, "alert_rate": 0.999}).promote


def test_unlabelled_rule() -> None:
    champ = {"alert_rate": 0.002, "calibration_drift": 0.30}
    assert RULE.decide(champ, {"alert_rate": 0.001, "calibration_drift": 0.10}).promote
    assert not RULE.decide(champ, {"alert_rate": 0.05, "calibration_drift": 0.05}).promote
    assert not RULE.decide(champ, {"alert_rate": 0.001, "calibration_drift": 0.295}).promote
    assert not RULE.decide(champ, {"alert_rate": 0.001, "calibration_drift": math.nan}).promote
    # a champion already over budget does not lock out a challenger that is no worse
    over = {"alert_rate": 0.2, "calibration_drift": 0.5}
    assert RULE.decide(over, {"alert_rate": 0.2, "calibration_drift": 0.2}).promote
