"""Campaign scoring against windows worked out by hand (1 s grid, 30 s recovery tail)."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.validation.scoring import sample_alarm, score_campaign


def _alarm(*spans: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Prometheus-like alarm samples every second from 1000 to 1400, 1 inside the given spans."""
    ts = np.arange(1000.0, 1400.0, 1.0) + 0.3  # scrapes are not aligned to whole seconds
    vals = np.zeros(len(ts))
    for s, e in spans:
        vals[(ts >= s) & (ts < e)] = 1.0
    return ts, vals


FAULTS = [
    {"type": "cpu_saturation", "start": 1100.0, "end": 1160.0},
    {"type": "disk_full", "start": 1250.0, "end": 1300.0},
]


def test_one_hit_one_miss_one_false_run() -> None:
    ts, vals = _alarm((1105, 1121), (1200, 1204))
    res = score_campaign(
        FAULTS, t0=1000, t1=1400, alarm_ts=ts, alarm_values=vals, alert_times=[1112.0], step_s=1, tail_s=30
    )
    # events: cpu detected, disk missed; alarm 1200-1203 is after cpu's tail (1190) and before disk.
    assert res["events"] == 2 and res["detected_events"] == 1
    assert res["false_alert_runs"] == 1
    assert res["event_precision"] == 0.5
    assert res["event_recall"] == 0.5
    assert res["event_f1"] == 0.5
    # quiet time: 400 s - 60 s - 50 s = 290 s
    assert res["quiet_hours"] == pytest.approx(290 / 3600, abs=1e-4)
    assert res["false_alert_runs_per_hour"] == pytest.approx(3600 / 290, abs=0.01)
    cpu, disk = res["faults"]
    assert cpu["detected"] and cpu["detect_s"] == pytest.approx(5.0)  # grid step 1105 holds sample 1105.3
    assert cpu["alert_s"] == pytest.approx(12.0)
    assert not disk["detected"] and disk["detect_s"] is None and disk["alert_s"] is None
    assert res["median_detect_s"] == 5.0 and res["p90_detect_s"] == 5.0
    assert res["median_alert_s"] == 12.0
    by = res["by_type"]
    assert by["cpu_saturation"]["event_precision"] == 0.5  # its hit and the one false run
    assert by["cpu_saturation"]["event_recall"] == 1.0
    assert by["cpu_saturation"]["event_f1"] == pytest.approx(2 / 3, abs=1e-3)
    assert by["disk_full"]["event_recall"] == 0.0 and by["disk_full"]["event_f1"] == 0.0


def test_alarm_in_recovery_tail_counts_later_does_not() -> None:
    faults = [{"type": "db_outage", "start": 1100.0, "end": 1160.0}]
    ts, vals = _alarm((1180, 1183))  # 20 s after the end: inside the 30 s tail
    res = score_campaign(faults, t0=1000, t1=1400, alarm_ts=ts, alarm_values=vals)
    assert res["event_recall"] == 1.0 and res["false_alert_runs"] == 0
    assert res["faults"][0]["detect_s"] == pytest.approx(80.0)
    ts, vals = _alarm((1191, 1193))  # 31 s after the end: a false alarm, and the fault is missed
    res = score_campaign(faults, t0=1000, t1=1400, alarm_ts=ts, alarm_values=vals)
    assert res["event_recall"] == 0.0 and res["false_alert_runs"] == 1 and res["event_precision"] == 0.0


def test_long_fault_gets_a_tenth_of_its_length_as_tail() -> None:
    faults = [{"type": "memory_pressure", "start": 1000.0, "end": 1600.0}]
    ts = np.arange(900.0, 1800.0, 1.0)
    vals = ((ts >= 1655) & (ts < 1657)).astype(float)  # 55 s after the end: inside max(30, 60)
    res = score_campaign(faults, t0=900, t1=1800, alarm_ts=ts, alarm_values=vals)
    assert res["event_recall"] == 1.0 and res["faults"][0]["detect_s"] == pytest.approx(655.0)


def test_split_alarms_inside_one_fault_are_one_detection() -> None:
    ts, vals = _alarm((1101, 1103), (1110, 1112), (1150, 1152))
    res = score_campaign(FAULTS[:1], t0=1000, t1=1400, alarm_ts=ts, alarm_values=vals)
    assert res["event_precision"] == 1.0 and res["alert_runs"] == 3 and res["false_alert_runs"] == 0


def test_no_alarm_at_all() -> None:
    res = score_campaign(FAULTS, t0=1000, t1=1400, alarm_ts=np.array([]), alarm_values=np.array([]))
    assert res["event_recall"] == 0.0 and res["event_f1"] == 0.0
    assert res["median_detect_s"] is None and res["false_alert_runs_per_hour"] == 0.0


def test_p90_over_many_detections() -> None:
    faults = [{"type": "cpu_saturation", "start": 1000.0 + 100 * i, "end": 1040.0 + 100 * i} for i in range(10)]
    ts = np.arange(1000.0, 2000.0, 1.0)
    vals = np.zeros(len(ts))
    for i in range(10):  # detection delays 1..10 s
        vals[(ts >= 1000 + 100 * i + (i + 1)) & (ts < 1000 + 100 * i + (i + 3))] = 1
    res = score_campaign(faults, t0=1000, t1=2000, alarm_ts=ts, alarm_values=vals)
    assert res["event_recall"] == 1.0
    assert res["median_detect_s"] == pytest.approx(5.5)
    assert res["p90_detect_s"] == pytest.approx(9.1)  # linear interpolation, numpy's default


def test_sample_alarm_bins_by_step() -> None:
    grid = np.arange(0.0, 10.0, 2.0)
    got = sample_alarm(grid, np.array([0.5, 3.9, 4.0, 9.99, 12.0, -1.0]), np.array([1, 0, 1, 1, 1, 1]), 2.0)
    assert got.tolist() == [True, False, True, False, True]


def test_an_alarm_stuck_on_scores_perfect_events_but_is_exposed() -> None:
    # The bench event rule: one alarm run over everything overlaps every fault and is never a false run.
    ts = np.arange(1000.0, 1400.0)
    res = score_campaign(FAULTS, t0=1000, t1=1400, alarm_ts=ts, alarm_values=np.ones(len(ts)))
    assert res["event_f1"] == 1.0 and res["false_alert_runs"] == 0 and res["alert_runs"] == 1
    assert res["quiet_alarm_fraction"] == 1.0
    assert res["onset_recall"] == 0.0
    assert all(f["alarm_on_before_start"] and not f["onset_detected"] for f in res["faults"])
    # 110 anomalous of 400 rows, all alarmed: point precision tells the same story.
    assert res["point_precision"] == pytest.approx(110 / 400, abs=1e-3)


def test_onset_needs_the_alarm_off_just_before_the_fault() -> None:
    ts, vals = _alarm((1097, 1130))  # on 3 s before the cpu fault: not all of the 5 s look-back
    res = score_campaign(FAULTS, t0=1000, t1=1400, alarm_ts=ts, alarm_values=vals)
    cpu = res["faults"][0]
    assert cpu["detected"] and cpu["onset_detected"] and not cpu["alarm_on_before_start"]
    ts, vals = _alarm((1090, 1130))  # on for 10 s before: it was not raised by the fault
    res = score_campaign(FAULTS, t0=1000, t1=1400, alarm_ts=ts, alarm_values=vals)
    cpu = res["faults"][0]
    assert cpu["detected"] and cpu["alarm_on_before_start"] and not cpu["onset_detected"]
    assert res["onset_recall"] == 0.0 and res["event_recall"] == 0.5


def test_chat_messages_give_time_to_chat_and_signature_match() -> None:
    ts, vals = _alarm((1105, 1121))
    chat = [
        {"t": 1090.0, "status": "firing", "entity": "h", "signature": "cpu_saturation"},  # before: not this fault's
        {"t": 1108.5, "status": "firing", "entity": "demo", "signature": "latency_regression"},
        {"t": 1110.0, "status": "firing", "entity": "h", "signature": "cpu_saturation"},
        {"t": 1170.0, "status": "resolved", "entity": "h", "signature": ""},  # resolves never count
        {"t": 1260.0, "status": "firing", "entity": "h", "signature": "disk_io_saturation"},  # wrong runbook
    ]
    res = score_campaign(FAULTS, t0=1000, t1=1400, alarm_ts=ts, alarm_values=vals, chat_messages=chat, tail_s=30)
    cpu, disk = res["faults"]
    assert cpu["chat_s"] == 8.5 and cpu["signature_expected"] == "cpu_saturation" and cpu["signature_match"]
    assert [c["signature"] for c in cpu["chat"]] == ["latency_regression", "cpu_saturation"]
    assert disk["chat_s"] == 10.0 and disk["signature_match"] is False
    assert res["signature_accuracy"] == 0.5 and res["median_chat_s"] == pytest.approx(9.2, abs=0.06)  # rounded to 0.1 s
    assert res["one_message_fraction"] == 0.5  # the cpu fault drew two incident messages, the disk fault one
    quiet = score_campaign(FAULTS, t0=1000, t1=1400, alarm_ts=ts, alarm_values=vals)
    assert quiet["faults"][0]["chat_s"] is None and quiet["faults"][0]["signature_match"] is None
    assert quiet["signature_accuracy"] is None and quiet["one_message_fraction"] == 0.0
    # One incident: the host's message opens it, the service's joins it as an update; both are read
    # for the runbook named, only the first counts as a message of its own.
    chat[1], chat[2] = dict(chat[2], t=1108.5), dict(chat[1], t=1110.0, status="update")
    grouped = score_campaign(FAULTS, t0=1000, t1=1400, alarm_ts=ts, alarm_values=vals, chat_messages=chat, tail_s=30)
    assert grouped["faults"][0]["signature_match"] and grouped["faults"][0]["chat_s"] == 8.5
    assert grouped["one_message_fraction"] == 1.0


def test_a_run_outlasting_another_faults_tail_is_not_false_for_this_type() -> None:
    # cpu's alarm stays on 40 s after cpu ends (the model recovering), past its 30 s tail; a short run
    # at 1215 touches no window; disk_full is detected at 1255.
    ts, vals = _alarm((1105, 1200), (1215, 1218), (1255, 1260))
    res = score_campaign(FAULTS, t0=1000, t1=1400, alarm_ts=ts, alarm_values=vals, tail_s=30)
    disk = res["by_type"]["disk_full"]
    # Its hit and the 1215 false run; the tail end of cpu's run (1190-1200) is not held against it.
    assert disk["event_recall"] == 1.0 and disk["event_precision"] == 0.5
    cpu = res["by_type"]["cpu_saturation"]
    assert cpu["event_recall"] == 1.0 and cpu["event_precision"] == 0.5


def test_an_overlapping_pair_is_judged_each_fault_on_its_own_side() -> None:
    """A DB outage from 1100 and a CPU fault from 1130 (30 s in): the service's alarm from 1104 covers
    both windows, so the overall alarm says nothing about the CPU fault's onset; the host's own alarm
    rises at 1136. Each fault is read from its side's alarm and messages, and the pair stands apart
    from the per-type figures."""
    from vigil.validation.scoring import incidents_per_fault

    pair = [
        {"type": "db_outage", "start": 1100.0, "end": 1145.0, "params": {"overlaps": "cpu_saturation"}},
        {"type": "cpu_saturation", "start": 1130.0, "end": 1175.0, "params": {"overlaps": "db_outage"}},
        {"type": "cpu_saturation", "start": 1300.0, "end": 1345.0},
    ]
    ts, overall = _alarm((1104, 1190), (1303, 1350))
    _, service = _alarm((1104, 1170))
    _, host = _alarm((1136, 1190), (1303, 1350))
    chat = [
        {"t": 1106.0, "status": "firing", "entity": "demo", "signature": "dependency_outage", "dependency": "database"},
        {"t": 1138.0, "status": "firing", "entity": "h:9100", "signature": "cpu_saturation"},
        {"t": 1306.0, "status": "firing", "entity": "h:9100", "signature": "cpu_saturation"},
    ]
    sides = {"service": (ts, service), "host": (ts, host)}
    res = score_campaign(pair, t0=1000, t1=1400, alarm_ts=ts, alarm_values=overall, chat_messages=chat,
                         tail_s=30, side_alarms=sides, services={"demo"})  # fmt: skip
    db, cpu, alone = res["faults"]
    assert (db["detect_s"], db["onset_detected"], db["overlaps"]) == (4.0, True, "cpu_saturation")
    assert (cpu["detect_s"], cpu["onset_detected"]) == (6.0, True)  # the overall alarm was on since 1104
    assert [c["signature"] for c in db["chat"]] == ["dependency_outage"] and db["signature_match"]
    assert [c["signature"] for c in cpu["chat"]] == ["cpu_saturation"] and cpu["signature_match"]
    assert res["onset_recall"] == 1.0 and res["one_message_fraction"] == 1.0 and res["signature_accuracy"] == 1.0
    assert res["overlaps"] == {"faults": 2, "onset_recall": 1.0, "signature_accuracy": 1.0, "place_accuracy": 1.0,
                               "one_message_fraction": 1.0}  # fmt: skip
    assert res["by_type"]["cpu_saturation"]["instances"] == 1 and "db_outage" not in res["by_type"]
    # Without the sides the overall alarm judges it: on since before the CPU fault began.
    blind = score_campaign(pair, t0=1000, t1=1400, alarm_ts=ts, alarm_values=overall, tail_s=30)
    assert blind["faults"][1]["onset_detected"] is False
    # One incident for both (a join window wide enough to merge them) leaves the CPU fault without its own.
    merged = [{"id": "a", "started": 1104.0, "entities": [{"entity": "demo", "since": 1104.0},
                                                          {"entity": "h:9100", "since": 1136.0}]},
              {"id": "b", "started": 1303.0, "entities": [{"entity": "h:9100", "since": 1303.0}]}]  # fmt: skip
    counted = incidents_per_fault(pair, merged, tail_s=30, services={"demo"})
    assert [p["incidents"] for p in counted["per_fault"]] == [1, 0, 1]
    host_own = {"id": "c", "started": 1136.0, "entities": [{"entity": "h:9100", "since": 1136.0}]}
    apart = [merged[0] | {"entities": merged[0]["entities"][:1]}, host_own, merged[1]]
    counted = incidents_per_fault(pair, apart, tail_s=30, services={"demo"})
    assert [p["incidents"] for p in counted["per_fault"]] == [1, 1, 1] and counted["one_incident_fraction"] == 1.0


def test_the_place_named_is_the_host_the_service_or_the_dependency_at_fault() -> None:
    """Issue 15's fixed places: a host fault must be named on the host, the service's own regression on
    the service with no dependency, a network fault at the inventory dependency, the DB outage at the
    database; any message of the fault's (resolves aside) that names it counts."""
    from vigil.validation.scoring import EXPECTED_PLACE, names_place

    services = {"demo"}
    host = {"entity": "127.0.0.1:9100", "dependency": ""}
    service = {"entity": "demo", "dependency": ""}
    inventory = {"entity": "demo", "dependency": "inventory"}
    assert names_place(host, EXPECTED_PLACE["disk_full"], services)
    assert not names_place(service, EXPECTED_PLACE["disk_full"], services)
    assert names_place(service, EXPECTED_PLACE["latency_regression"], services)
    assert not names_place(inventory, EXPECTED_PLACE["latency_regression"], services)
    assert names_place(inventory, EXPECTED_PLACE["network_delay"], services)
    assert not names_place(inventory, EXPECTED_PLACE["db_outage"], services)
    assert not names_place(service, EXPECTED_PLACE["network_loss"], services)

    faults = [{"type": "db_outage", "start": 1100.0, "end": 1160.0},
              {"type": "disk_full", "start": 1250.0, "end": 1300.0}]  # fmt: skip
    ts, vals = _alarm((1105, 1121), (1255, 1270))
    chat = [
        {"t": 1108.0, "status": "firing", "entity": "demo", "signature": "dependency_outage", "dependency": "database"},
        {"t": 1258.0, "status": "firing", "entity": "demo", "signature": "dependency_outage", "dependency": "database"},
        {"t": 1259.0, "status": "update", "entity": "127.0.0.1:9100", "signature": "disk_full"},
    ]
    res = score_campaign(faults, t0=1000, t1=1400, alarm_ts=ts, alarm_values=vals, chat_messages=chat, tail_s=30,
                         services=services)  # fmt: skip
    assert [f["place_named"] for f in res["faults"]] == [True, True] and res["place_accuracy"] == 1.0
    assert [f["place_expected"] for f in res["faults"]] == ["dependency:database", "host"]
    chat[2]["entity"] = "demo"
    res = score_campaign(faults, t0=1000, t1=1400, alarm_ts=ts, alarm_values=vals, chat_messages=chat, tail_s=30,
                         services=services)  # fmt: skip
    assert res["faults"][1]["place_named"] is False and res["place_accuracy"] == 0.5
