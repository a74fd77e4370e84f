"""The fault campaign against the live local stack.

1. Stage: a small ext4 filesystem for the demo service's database (the disk-full fault fills it) and
   the network lab holding its downstream dependency (the network faults degrade that link). The
   stack is (re)started so the demo service uses both; a stack that was running with other settings
   is restarted with them afterwards.
2. Baseline: a clean period with no fault, then ``vigil train --source archive`` on it and promotion
   to champion, so nothing is tuned on the faults. The run waits until Vigil scores every entity.
3. Faults: each type ``repeats`` times, in an order shuffled with a recorded seed, one at a time
   with a recovery gap; each records its command, its measured effect and exact start/end.
4. Scoring from what Prometheus recorded (``vigil_anomaly``) and what Alertmanager received, then the
   report, the JSON and the labelled fault windows.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vigil.config import Settings
from vigil.detection.served import served_incidents
from vigil.errors import VigilError
from vigil.validation import measure
from vigil.validation.base import FaultRecord
from vigil.validation.chatsink import ChatSink
from vigil.validation.evidence import PLOT_QUERIES, AlertmanagerWatch, prom_client, prom_range, replay_scores
from vigil.validation.faults import Stage, preflight, run_entry
from vigil.validation.hostlock import host_lock
from vigil.validation.journal import CleanupJournal
from vigil.validation.labels import last_campaign_end, save_labelset
from vigil.validation.livestack import (
    forget_training,
    lab_name,
    serving_in_stack,
    settle,
    train_baseline,
    wait_scoring,
    wait_steady,
    wired_stack,
)
from vigil.validation.network import NetLab
from vigil.validation.profiles import FAULT_TYPES, OVERLAP, PROFILES, schedule
from vigil.validation.report import Series, write_json, write_report
from vigil.validation.scoring import incidents_per_fault, score_campaign, side_selectors
from vigil.validation.signals import interrupt_on_terminate
from vigil.validation.storage import SmallFilesystem

log = logging.getLogger("vigil.validation")


def run_campaign(
    settings: Settings,
    *,
    profile: str = "quick",
    seed: int | None = None,
    json_out: Path | None = None,
    report_dir: Path | None = None,
    purpose: str = "test",
    types: tuple[str, ...] = FAULT_TYPES,
    progress: Callable[[str], None] | None = None,
    record_dir: Path | None = None,
) -> dict[str, Any]:
    if profile not in PROFILES:
        raise VigilError(f"unknown profile {profile!r}", hint=f"use one of {', '.join(PROFILES)}")
    prof = PROFILES[profile]
    preflight()
    seed = seed if seed is not None else random.SystemRandom().randrange(1 << 31)
    say = progress or (lambda msg: log.info("%s", msg))
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    home = settings.home
    work = home / "validation"
    journal = CleanupJournal.for_home(home)
    recovered = journal.recover()
    if recovered:
        say(f"removed {len(recovered)} leftover(s) of an interrupted run")
    notes: list[str] = []
    with interrupt_on_terminate(), contextlib.ExitStack() as stack:
        waited = stack.enter_context(host_lock(say=say))
        if waited > 5:
            notes.append(f"waited {waited:.0f} s for another fault injector on this host to finish")
        t_begin = time.time()
        fs_dir = work / "demo-fs"
        say("staging: small ext4 filesystem for the demo database, network namespace for its dependency")
        stack.enter_context(SmallFilesystem(journal, fs_dir, size_mb=64, image_dir=work))
        lab = NetLab(journal, home / "run", name=lab_name(home))
        stack.enter_context(lab)
        chat = stack.enter_context(ChatSink())
        say("starting the local stack wired to them")
        handle = stack.enter_context(
            wired_stack(settings, fs_dir / "orders.db", f"{lab.url}/inventory", prof, journal, chat.apprise_url)
        )
        s = handle.settings
        stage = Stage(journal, s, fs_dir, fs_dir / "orders.db", lab, work / "io")
        clean_from = max(time.time(), last_campaign_end(home))
        wait = clean_from + prof.baseline_s - time.time()
        say(f"baseline: {prof.baseline_s:.0f} s of clean traffic")
        if wait > 0:
            time.sleep(wait)
        # The archive trails Prometheus by up to one collection interval plus its lag; the window ends
        # where the archive does, so it must not reach back before the clean period began.
        catch_up = s.collect_interval_s + s.collect_lag_s
        baseline_busy = measure.cpu_busy_fraction(max(catch_up, 3.0))
        say("training on the baseline only")
        training = train_baseline(s, time.time() - catch_up - clean_from, prof.train_args)
        live = serving_in_stack(s)
        trained = training["result"] if isinstance(training.get("result"), list) else []
        if live:
            entities = wait_scoring(s, prof.warmup_timeout_s, expected=max(1, len(trained)))
        else:
            entities = 0
            notes.append(
                "the stack has no detection service (`vigil serve` was skipped): alarms come from replaying the "
                "recorded data through the champion model after the run, and there are no Alertmanager alerts"
            )
        settled_s = settle(baseline_busy, min_s=10.0, max_s=prof.settle_max_s)
        say(f"Vigil scores {entities} entities; host settled after {settled_s:.0f} s (CPU near its baseline)")
        forgot_s = forget_training(s, trained, prof.forget_max_s)
        say(f"waited {forgot_s:.0f} s for the models to forget the training run")
        say(f"injecting {prof.repeats} x {len(types)} faults, seed {seed}")
        order = schedule(prof, seed, types)
        records: list[FaultRecord] = []
        with AlertmanagerWatch(s.effective_alertmanager_url) as am:
            t0 = time.time()
            time.sleep(max(prof.gap_s, prof.soak_s))  # quiet time before the first fault too
            steady: list[dict[str, Any] | None] = []  # one per fault; None where nothing could be asked
            for i, entry in enumerate(order):
                calm = wait_steady(s, prof.steady_max_s) if live and prof.steady_max_s > 0 else None
                say(f"[{i + 1}/{len(order)}] {entry.replace(OVERLAP, f' + {prof.overlap_offset_s:.0f} s later: ')}")
                done = run_entry(entry, stage, prof)
                records += done
                steady += [calm] + [None] * (len(done) - 1)  # an overlap's second fault starts into the first
                time.sleep(prof.gap_s)
            t1 = time.time()
            time.sleep(3)  # the last alarms reach Prometheus and Alertmanager
        incidents = served_incidents(s) if live else None
        if incidents is not None:  # serving keeps incidents across restarts: only this run's count
            incidents = [i for i in incidents if t0 <= float(i.get("started", 0.0)) <= t1 + prof.tail_s]
        prom = prom_client(s)
        services = frozenset(s.entities)
        side_alarms = None
        if live:
            alarm = prom_range(prom, "max(vigil_anomaly)", t0, t1, s.scrape_interval_s)
            if services and any(r.params.get("overlaps") for r in records):
                side_alarms = {side: prom_range(prom, f"max({sel})", t0, t1, s.scrape_interval_s)
                               for side, sel in side_selectors(services).items()}  # fmt: skip
                lost = sorted(side for side, (ts, _) in side_alarms.items() if not len(ts))
                if lost:  # a failed query is no evidence of silence: those pairs are read from the overall alarm
                    notes.append(f"no {' or '.join(lost)} alarm series from Prometheus: overlapping faults "
                                 "of that side are judged on the overall alarm")  # fmt: skip
                    side_alarms = {side: series for side, series in side_alarms.items() if side not in lost}
            score = prom_range(prom, "max(vigil_anomaly_score)", t0 - prof.baseline_s, t1, s.scrape_interval_s)
        else:
            alarm, score, entities = replay_scores(s, t0, t1, warm_s=min(prof.baseline_s, 120.0))
        metrics = {name: prom_range(prom, q, t0 - 60, t1, s.scrape_interval_s) for name, q in PLOT_QUERIES.items()}
        metrics["demo_fs_free_bytes"] = prom_range(
            prom, f'node_filesystem_avail_bytes{{mountpoint="{fs_dir.resolve()}"}}', t0 - 60, t1, s.scrape_interval_s
        )
        faults = [
            {"type": r.type, "start": r.start, "end": r.end, "command": r.command, "effect": r.effect,
             "baseline": r.baseline, "took_effect": r.took_effect, "params": r.params,
             "steady": st}
            for r, st in zip(records, steady, strict=True)
        ]  # fmt: skip
        recorded = None
        if record_dir is not None and live and trained:
            from vigil.validation.recording import record_from_stack

            say(f"recording what the models saw into {record_dir}")
            recorded = record_from_stack(
                s, record_dir, trained=trained, faults=faults, t0=t0, t1=t1, tail_s=prof.tail_s,
                meta={"run_id": run_id, "profile": prof.name, "seed": seed, "services": sorted(services),
                      "started": datetime.fromtimestamp(t_begin, UTC).isoformat(timespec="seconds")},
            )  # fmt: skip
    journal.recover()  # compacts the journal; every entry of this run is already undone
    not_effective = [r.type for r in records if not r.took_effect]
    if not_effective:
        notes.append(f"faults whose effect was not confirmed by measurement: {', '.join(not_effective)}")
    unsteady = [r.type for r, st in zip(records, steady, strict=True) if st is not None and not st["steady"]]
    if unsteady:
        notes.append(
            f"injected while an alarm was still on after waiting {prof.steady_max_s:.0f} s for steady state: "
            + ", ".join(unsteady)
        )
    chat_messages = chat.snapshot()
    result = score_campaign(
        faults, t0=t0, t1=t1, alarm_ts=alarm[0], alarm_values=alarm[1], alert_times=am.anomaly_alert_times(),
        chat_messages=chat_messages, step_s=s.scrape_interval_s, tail_s=prof.tail_s, side_alarms=side_alarms,
        services=services,
    )  # fmt: skip
    if incidents is None:
        notes.append("the detection service did not list its incidents: they are not scored")
    else:
        result["incidents"] = incidents_per_fault(faults, incidents, tail_s=prof.tail_s, services=services)
    if result["quiet_alarm_fraction"] > 0.2:
        notes.insert(
            0,
            f"CAUTION: the alarm was on for {result['quiet_alarm_fraction']:.0%} of the quiet time in "
            f"{result['alert_runs']} run(s). The event rule counts an alarm already on at a fault's start as "
            f"detecting it, so event precision/recall/F1 overstate detection; only "
            f"{sum(f['onset_detected'] for f in result['faults'])} of {len(faults)} faults raised an alarm "
            f"that was not already on (onset recall {result['onset_recall']}).",
        )
    result["meta"] = {
        "run_id": run_id, "profile": prof.name, "profile_settings": asdict(prof), "seed": seed, "purpose": purpose,
        "order": order, "started": datetime.fromtimestamp(t_begin, UTC).isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"), "duration_s": round(time.time() - t_begin, 1),
        "scored_period": [t0, t1], "entities": entities, "training": training, "model": "champion trained on baseline",
        "alertmanager_alerts": list(am.first_seen.values()), "alertmanager_poll_errors": am.errors,
        "settle_s": settled_s, "forget_s": forgot_s, "baseline_cpu_busy": round(baseline_busy, 3),
        "chat_messages": chat_messages,
        "alarm_samples": int(len(alarm[0])), "notes": notes,
        "detection_source": "prometheus vigil_anomaly" if live else "offline replay of the champion",
        "recording": str(recorded) if recorded else None,
    }  # fmt: skip
    save_labelset(home, run_id, purpose, faults, period=(t0, t1), meta={"seed": seed, "profile": prof.name})
    series = Series(metrics=metrics, score=score, threshold=None)
    out_dir = report_dir or (work / "reports" / run_id)
    result["meta"]["report_dir"] = str(out_dir)
    write_report(result, series, out_dir)
    if json_out is not None:
        write_json(result, json_out)
    return result
