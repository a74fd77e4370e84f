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
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests

from vigil.config import Settings, settings_overrides
from vigil.errors import PortInUse, UpstreamUnavailable, VigilError
from vigil.validation import measure
from vigil.validation.base import Fault, FaultRecord
from vigil.validation.chatsink import ChatSink
from vigil.validation.database import DatabaseContention, DatabaseOutage
from vigil.validation.host import CpuSaturation, DiskIoSaturation, MemoryPressure
from vigil.validation.hostlock import host_lock
from vigil.validation.journal import CleanupJournal
from vigil.validation.labels import last_campaign_end, save_labelset
from vigil.validation.network import BandwidthLimit, NetLab, NetworkDelay, PacketLoss
from vigil.validation.process import ProcessCrash
from vigil.validation.report import Series, write_json, write_report
from vigil.validation.scoring import score_campaign
from vigil.validation.signals import interrupt_on_terminate
from vigil.validation.storage import DiskFull, SmallFilesystem

log = logging.getLogger("vigil.validation")

FAULT_TYPES = (
    "cpu_saturation",
    "memory_pressure",
    "disk_io_saturation",
    "disk_full",
    "network_loss",
    "network_bandwidth",
    "network_delay",
    "db_outage",
    "latency_regression",
    "process_crash",
)

# Weaker instances an operator still wants caught, so that a practical minimum set just below the
# strong faults cannot pass: half the cores, less memory, one writer, 10 % loss, a 256 kbit link,
# 200 ms added, a DB slowed rather than stalled, one crash without a loop. A full disk and a DB outage
# have no weaker form (full is full; a lock held is an outage), so they are not doubled.
WEAK = "_weak"
WEAK_TYPES = tuple(
    f"{t}{WEAK}"
    for t in ("cpu_saturation", "memory_pressure", "disk_io_saturation", "network_loss", "network_bandwidth",
              "network_delay", "latency_regression", "process_crash")
)  # fmt: skip

ANOMALY_ALERTS = ("VigilAnomaly", "VigilAnomalyDetected")  # Vigil's own sender, and the Prometheus rule


@dataclass(frozen=True)
class Profile:
    name: str
    baseline_s: float  # clean data the model trains on (at least)
    fault_s: float  # how long each fault is held
    gap_s: float  # recovery gap after each fault; also the quiet time false alarms are counted in
    repeats: int
    tail_s: float  # an anomaly this long after a fault still counts for it (must be < gap_s)
    demo_base_rps: float = 8.0
    # Wall-clock seconds per replayed day of the demand trace. The quick run is too short to learn a
    # 4-minute "day", so its workload drifts slowly instead; the full run keeps the stack's default.
    demo_day_s: float = 240.0
    warmup_timeout_s: float = 240.0
    settle_max_s: float = 120.0  # longest wait for the host to calm down after training
    # Quiet time before the first fault. Recovery after each fault fills most of its gap, so without
    # a soak the false-alarm rate rests on a few minutes of truly quiet time.
    soak_s: float = 0.0
    # Longest wait, after the CPU settles, for the models to forget the training run (their memory is
    # window + smoothing + hold: 45 s with the stack's defaults). The quick run has no time for it in
    # its 15 minutes; its quiet time is mostly recovery anyway (docs/validation.md).
    forget_max_s: float = 180.0
    # Longest wait before each fault for every entity's alarm to be off (the steady state a fault is
    # injected into). A fault injected while a false alarm is on is credited with that alarm, and its
    # chat message is the false alarm's; the quick run has 15 minutes, so it waits little.
    steady_max_s: float = 60.0
    # Cross-validation shape for `vigil train`: the pipeline needs 120 training steps in the first fold,
    # which a 4.5-minute baseline only gives with a single fold and a short gap.
    train_args: tuple[str, ...] = ()
    weak_repeats: int = 0  # instances of each WEAK_TYPES fault, scored like the others


PROFILES = {
    # 10 fault types within the 15 minutes `make test` allows. The recovery gap must outlast the model's
    # memory of a fault (long window + alarm hold + smoothing) or every fault but the first starts
    # with the alarm still on; the quick run shortens both (20 s window, 5 s hold) to fit its gaps.
    "quick": Profile(
        "quick",
        baseline_s=180,
        fault_s=10,
        gap_s=40,
        repeats=1,
        tail_s=12,
        demo_day_s=7200,
        warmup_timeout_s=45,
        settle_max_s=30,
        forget_max_s=0,
        steady_max_s=8,
        train_args=("--folds", "1", "--gap", "5", "--param", "long_window=20", "--param", "alarm_hold=5"),
    ),  # fmt: skip
    # Stack defaults (30 s window, 10 s hold): gaps of 75 s leave 30 s of true quiet after each recovery.
    "full": Profile("full", baseline_s=900, fault_s=45, gap_s=75, repeats=2, tail_s=30, soak_s=600, weak_repeats=1),
}

SERVICE_PROBES: dict[str, tuple[str, str]] = {
    "network_loss": ("GET", "/api/inventory"),
    "network_bandwidth": ("GET", "/api/inventory"),
    "network_delay": ("GET", "/api/inventory"),
    "db_outage": ("GET", "/api/orders"),
    "latency_regression": ("GET", "/api/orders"),
    "disk_full": ("POST", "/api/orders"),
    "process_crash": ("GET", "/api/orders"),
}

PLOT_QUERIES = {
    "cpu_busy": '1 - avg(rate(node_cpu_seconds_total{mode=~"idle|steal"}[5s]))',
    "mem_available_bytes": "sum(node_memory_MemAvailable_bytes)",
    "disk_write_bytes_per_s": "sum(rate(node_disk_written_bytes_total[5s]))",
    "disk_io_busy": "max(rate(node_disk_io_time_seconds_total[5s]))",
    # `or vector(0)`: before the first error there is no 5xx series at all, which is a rate of 0, not a gap.
    "demo_error_rate": '(sum(rate(demo_http_requests_total{code=~"5.."}[5s])) or vector(0))'
    " / sum(rate(demo_http_requests_total[5s]))",
    "demo_request_rate": "sum(rate(demo_http_requests_total[5s]))",
    "demo_p90_latency_s": "histogram_quantile(0.9, sum by (le) (rate(demo_http_request_duration_seconds_bucket[5s])))",
    "demo_up": 'max(up{job="demo"})',
}


# --- the stack -----------------------------------------------------------------------------------
@dataclass
class StackHandle:
    settings: Settings
    restart_previous: bool  # a stack was running before the campaign: start it again afterwards


def _demo_pid(settings: Settings) -> int | None:
    from vigil.stack import procs as stack_procs

    rec = stack_procs.read_record(settings.run_dir, "demo_app")
    return rec.pid if rec is not None and stack_procs.is_alive(rec) else None


def campaign_settings(
    settings: Settings, db_path: Path, downstream_url: str, profile: Profile, chat_url: str
) -> Settings:
    """``settings`` with the demo service on the staged database and dependency, and the stack quiet."""
    demo = settings.demo.model_copy(
        update={"db_path": str(db_path), "downstream_url": downstream_url,
                "base_rps": profile.demo_base_rps, "day_s": profile.demo_day_s}
    )  # fmt: skip
    return settings.model_copy(
        update={
            "demo": demo,
            # No scheduled retraining while faults run: the model must be the one fitted on the baseline.
            "retrain_interval_s": 7 * 86400.0,
            # Nor drift checks: each one scores minutes of archive on the 2 cores, a periodic load the
            # baseline (which had no model to check) never saw.
            "drift_check_interval_s": 7 * 86400.0,
            # Explanations go to the campaign's own chat endpoint, never to the team's channels.
            "apprise_urls": [chat_url] if chat_url else [],
        }
    )


@contextlib.contextmanager
def wired_stack(
    settings: Settings,
    db_path: Path,
    downstream_url: str,
    profile: Profile,
    journal: CleanupJournal | None = None,
    chat_url: str = "",
) -> Iterator[StackHandle]:
    """The local stack with the demo service on the staged database and dependency. A stack that was
    running is stopped first and started again afterwards with ``settings``."""
    from vigil.stack import control

    restart_previous = control.supervisor_record(settings) is not None
    if restart_previous:
        log.info("stopping the running stack to rewire the demo service for the campaign")
        control.down(settings)
    ours = campaign_settings(settings, db_path, downstream_url, profile, chat_url)
    entry = ""
    if journal is not None:
        # A SIGKILLed campaign must not leave a stack running on a filesystem the cleanup unmounts.
        entry = journal.add(
            "stack",
            {"kind": "argv", "argv": [sys.executable, "-m", "vigil.cli.main", "down"],
             "env": {"VIGIL_HOME": str(ours.home)}, "timeout": 60},
        )  # fmt: skip
    try:
        try:
            control.up(ours, timeout_s=120)
        except PortInUse:
            time.sleep(5)  # a stack stopped a moment ago may still be releasing its ports
            control.up(ours, timeout_s=120)
        yield StackHandle(ours, restart_previous)
    finally:
        with contextlib.suppress(VigilError, OSError):
            control.down(ours)
        if journal is not None:
            journal.done(entry)
        if restart_previous:
            with contextlib.suppress(VigilError, OSError):
                control.up(settings, timeout_s=120)


# --- evidence from Prometheus and Alertmanager ---------------------------------------------------
class AlertmanagerWatch:
    """Polls Alertmanager every second and remembers when each anomaly alert was first seen there."""

    def __init__(self, url: str, interval_s: float = 1.0) -> None:
        self.url = url.rstrip("/")
        self.interval_s = interval_s
        self.first_seen: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="am-watch", daemon=True)
        self.errors = 0

    def __enter__(self) -> AlertmanagerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                now = time.time()
                try:
                    resp = session.get(f"{self.url}/api/v2/alerts", timeout=2)
                    resp.raise_for_status()
                    for alert in resp.json():
                        if alert.get("status", {}).get("state", "active") != "active":
                            continue
                        # An alert that resolves and fires again keeps its fingerprint but gets a new startsAt.
                        key = f"{alert.get('fingerprint', '')}@{alert.get('startsAt', '')}"
                        if key not in self.first_seen:
                            self.first_seen[key] = {
                                "alertname": alert.get("labels", {}).get("alertname", ""),
                                "labels": alert.get("labels", {}),
                                "annotations": alert.get("annotations", {}),
                                "startsAt": alert.get("startsAt", ""),
                                "seen": now,
                            }
                except (requests.RequestException, ValueError):
                    self.errors += 1
                self._stop.wait(self.interval_s)

    def anomaly_alert_times(self) -> list[float]:
        return sorted(a["seen"] for a in self.first_seen.values() if a["alertname"] in ANOMALY_ALERTS)


def _prom(settings: Settings) -> Any:
    from vigil.prometheus import PromClient

    return PromClient(settings.effective_prometheus_url)


def _range(prom: Any, expr: str, t0: float, t1: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    try:
        series = prom.query_range(expr, t0, t1, step)
    except VigilError as exc:
        log.warning("query %s failed: %s", expr, exc)
        return np.array([]), np.array([])
    if not series:
        return np.array([]), np.array([])
    s = series[0]
    return np.asarray(s.timestamps, dtype=np.float64), np.asarray(s.values, dtype=np.float64)


def wait_scoring(settings: Settings, timeout_s: float, expected: int = 1) -> int:
    """Wait until Prometheus holds fresh ``vigil_anomaly`` series for ``expected`` entities (or the
    timeout passes with at least one); how many entities are scored."""
    prom = _prom(settings)
    deadline = time.monotonic() + timeout_s
    last = 0
    while time.monotonic() < deadline:
        try:
            res = prom.query("count(vigil_anomaly) and on() (time() - max(timestamp(vigil_anomaly)) < 10)")
            last = int(res[0].value) if res else 0
        except VigilError:
            last = 0
        if last >= expected:
            return last
        time.sleep(2)
    if last:
        log.warning("only %d of %d trained entities are scored after %.0f s", last, expected, timeout_s)
        return last
    raise UpstreamUnavailable(
        f"Vigil did not publish vigil_anomaly within {timeout_s:.0f}s of the model being trained",
        hint="check `vigil status` (component vigil) and its log",
    )


def serving_in_stack(settings: Settings) -> bool:
    """Whether the stack runs ``vigil serve`` (it skips it while that command does not exist)."""
    from vigil.stack import control

    return any(c["name"] == "vigil" and c["healthy"] for c in control.status(settings)["components"])


def replay_scores(
    settings: Settings, t0: float, t1: float, warm_s: float
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], int]:
    """Fallback when the stack has no detection service: score the recorded data with the champion.

    Batch scoring equals streaming (tested in the detectors package), so the alarms are the ones the
    service would have raised; there is no Alertmanager leg. Returns (alarm, score, entities), each
    series the max over entities on the scrape grid.
    """
    from vigil.ingest import signals
    from vigil.registry import ModelRegistry

    prom = _prom(settings)
    registry = ModelRegistry(settings)
    step = settings.scrape_interval_s
    alarms, scores = [], []
    for entity in signals.list_entities(settings=settings):
        frame = signals.load_entity_frame(prom, entity, start=t0 - warm_s, end=t1, step=step, settings=settings)
        _info, model = registry.load(entity, "champion")
        out = model.score_frame(frame)
        ts = frame.index.as_unit("ns").asi8.astype(np.float64) / 1e9
        alarms.append(pd.Series(out["alarm"].astype(float).to_numpy(), index=ts))
        scores.append(pd.Series(out["score"].astype(float).to_numpy(), index=ts))
    if not alarms:
        raise VigilError("no entity to score in the campaign period")
    alarm = pd.concat(alarms, axis=1).max(axis=1).sort_index()
    score = pd.concat(scores, axis=1).max(axis=1).sort_index()
    keep = alarm.index >= t0
    return (
        (alarm.index.to_numpy()[keep], alarm.to_numpy()[keep]),
        (score.index.to_numpy(), score.to_numpy()),
        len(alarms),
    )


def train_baseline(settings: Settings, since_s: float, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Train on the clean period only and promote the result to champion."""
    argv = [sys.executable, "-m", "vigil.cli.main", "train", "--source", "archive", "--since", f"{int(since_s)}s",
            "--promote", "always", "--json", *extra]  # fmt: skip
    t0 = time.monotonic()
    # Its own process, niced as `vigil train` is: its CPU reads as background work on the host the
    # model watches, and its memory goes when it ends. It loads the campaign's settings.
    env = {**os.environ, **settings_overrides(settings)}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        raise VigilError(f"baseline training failed: {(proc.stderr or proc.stdout).strip()[-400:]}")
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        out = {"stdout": proc.stdout[-400:]}
    return {"command": " ".join(argv[1:]), "seconds": round(time.monotonic() - t0, 1), "result": out}


def settle(baseline_busy: float, min_s: float, max_s: float, margin: float = 0.15) -> float:
    """Wait until the host's CPU is back near its baseline level after training; the seconds waited.

    Training and the serving workers loading the new models keep both cores busy for tens of seconds
    after ``vigil train`` returns; that load is Vigil's own, not part of the quiet period being scored.
    Judged from /proc/stat (3 calm seconds in a row), never from the model's output.
    """
    started = time.monotonic()
    calm = 0
    limit = max(baseline_busy + margin, 0.3)
    while time.monotonic() - started < max_s:
        busy = measure.cpu_busy_fraction(1.0)
        calm = calm + 1 if busy <= limit else 0
        if calm >= 3 and time.monotonic() - started >= min_s:
            break
    return round(time.monotonic() - started, 1)


def forget_training(settings: Settings, trained: list[dict[str, Any]], max_s: float) -> float:
    """Wait until the new champions no longer remember the training run itself; the seconds waited.

    ``settle`` ends when the CPU is calm, but a model keeps the burst in its feature windows, score
    smoothing and alarm hold for a while after that (45 s with the stack's defaults). The campaign's
    first training is load the baseline never contained, so quiet time starts once it is forgotten;
    in a deployment the trainer's periodic runs are part of the history the models learn.
    """
    if max_s <= 0:
        return 0.0
    from vigil.registry import ModelRegistry

    registry = ModelRegistry(settings)
    memory = [0.0]
    for entry in trained:
        with contextlib.suppress(VigilError):
            _info, model = registry.load(str(entry["name"]), "champion")
            memory.append(float(getattr(model, "memory_seconds", lambda: 0.0)()))
    wait = min(max(memory), max_s)
    time.sleep(wait)
    return round(wait, 1)


def alarmed_entities(settings: Settings) -> list[str] | None:
    """Entities whose alarm is on now, from the detection service itself (Prometheus lags a scrape);
    ``None`` when the service cannot say."""
    try:
        resp = requests.get(f"{settings.url('vigil')}/v1/entities", timeout=2)
        resp.raise_for_status()
        return sorted(str(e["entity"]) for e in resp.json()["entities"] if e.get("alarm"))
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None


def wait_steady(settings: Settings, max_s: float, quiet_s: float = 2.0, poll_s: float = 0.5) -> dict[str, Any]:
    """Wait until no entity has been alarmed for ``quiet_s`` (at most ``max_s``): the steady state a fault
    is injected into, as chaos experiments verify theirs first. Reports the wait and what was still on."""
    started = time.monotonic()
    quiet_since: float | None = None
    on: list[str] | None = None
    while True:
        now = time.monotonic()
        on = alarmed_entities(settings)
        if on == []:
            quiet_since = now if quiet_since is None else quiet_since
            if now - quiet_since >= quiet_s:
                break
        else:
            quiet_since = None
        if now - started >= max_s:
            break
        time.sleep(poll_s)
    return {"waited_s": round(time.monotonic() - started, 1), "steady": on == [], "alarmed": on or []}


# --- the campaign ----------------------------------------------------------------------------------
TOOLS = {
    "stress-ng": "stress-ng",
    "ip": "iproute2",
    "tc": "iproute2",
    "iptables": "iptables",
    "mkfs.ext4": "e2fsprogs",
    "losetup": "util-linux",
    "fallocate": "util-linux",
}


def preflight() -> None:
    """Fail early, in one line, when faults cannot be injected here."""
    import shutil

    from vigil.errors import DependencyMissing

    if os.geteuid() != 0:
        raise VigilError(
            "vigil validate needs root: it creates network namespaces, mounts and iptables rules",
            hint="run it as root (the sandbox and the CI runner are)",
        )
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise DependencyMissing(f"missing Debian packages: {' '.join(missing)}", hint="run scripts/setup.sh")


def lab_name(home: Path) -> str:
    """One lab per state directory, so two stacks on one host never share a namespace or subnet."""
    return f"v{zlib.crc32(str(home.resolve()).encode()) % 10**6}"


def schedule(profile: Profile, seed: int, types: tuple[str, ...] = FAULT_TYPES) -> list[str]:
    order = [t for t in types for _ in range(profile.repeats)]
    order += [w for w in WEAK_TYPES if w.removesuffix(WEAK) in types for _ in range(profile.weak_repeats)]
    random.Random(seed).shuffle(order)
    return order


@dataclass
class Stage:
    journal: CleanupJournal
    settings: Settings
    fs_dir: Path
    db_path: Path
    lab: NetLab
    io_dir: Path


def build_fault(kind: str, stage: Stage, profile: Profile) -> Fault:
    fault = _build_fault(kind.removesuffix(WEAK), kind.endswith(WEAK), stage, profile)
    fault.record.type = kind  # the label the run is scored by: weak instances are their own type
    return fault


def _build_fault(kind: str, weak: bool, stage: Stage, profile: Profile) -> Fault:
    j, cap = stage.journal, profile.fault_s + 60
    s = stage.settings
    if kind == "cpu_saturation":
        return CpuSaturation(j, workers=max(1, (os.cpu_count() or 2) // 2) if weak else 0, max_duration_s=cap)
    if kind == "memory_pressure":
        return MemoryPressure(j, fraction=0.15 if weak else 0.35, max_duration_s=cap)  # leaves room for other jobs
    if kind == "disk_io_saturation":
        if weak:
            return DiskIoSaturation(j, stage.io_dir, hdd_bytes="128M", io_workers=0, max_duration_s=cap)
        return DiskIoSaturation(j, stage.io_dir, hdd_bytes="512M", max_duration_s=cap)
    if kind == "disk_full":
        return DiskFull(j, stage.fs_dir)
    if kind == "network_loss":
        return PacketLoss(j, stage.lab, probability=0.1 if weak else 0.4, max_duration_s=cap)
    if kind == "network_bandwidth":
        return BandwidthLimit(j, stage.lab, rate_kbit=256 if weak else 32, max_duration_s=cap)
    if kind == "network_delay":
        return NetworkDelay(j, stage.lab, delay_ms=200 if weak else 700, max_duration_s=cap)
    if kind == "db_outage":
        return DatabaseOutage(j, stage.db_path, max_duration_s=cap)
    if kind == "latency_regression":
        hold = 60 if weak else 150
        return DatabaseContention(j, stage.db_path, hold_ms=hold, period_ms=250, max_duration_s=cap)
    if kind == "process_crash":
        from vigil.stack import control

        def restart() -> None:
            sup = control.supervisor_record(s)
            if sup is not None:
                os.kill(sup.pid, signal.SIGHUP)  # what `vigil up` does on a running stack

        return ProcessCrash(
            j, lambda: _demo_pid(s), f"{s.url('demo_app')}/healthz", crash_loop=not weak, restart=restart,
            max_duration_s=cap,
        )  # fmt: skip
    raise VigilError(f"unknown fault type {kind!r}")


def service_probe(settings: Settings, kind: str) -> dict[str, Any]:
    method, path = SERVICE_PROBES.get(kind.removesuffix(WEAK), ("GET", "/api/orders"))
    body = {"sku": "SKU-001", "quantity": 1} if method == "POST" else None
    return measure.http_probe(
        f"{settings.url('demo_app')}{path}", n=3, timeout_s=3, method=method, json_body=body
    ).as_dict()


def run_fault(kind: str, stage: Stage, profile: Profile) -> FaultRecord:
    fault = build_fault(kind, stage, profile)
    with fault as rec:
        rec.effect["service_probe"] = service_probe(stage.settings, kind)
        remaining = rec.start + profile.fault_s - time.time()
        if remaining > 0:
            time.sleep(remaining)
    log.info("%s: %.0f s, took effect: %s", kind, rec.end - rec.start, rec.took_effect)
    return rec


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
            for i, kind in enumerate(order):
                steady.append(wait_steady(s, prof.steady_max_s) if live and prof.steady_max_s > 0 else None)
                say(f"[{i + 1}/{len(order)}] {kind}")
                records.append(run_fault(kind, stage, prof))
                time.sleep(prof.gap_s)
            t1 = time.time()
            time.sleep(3)  # the last alarms reach Prometheus and Alertmanager
        prom = _prom(s)
        if live:
            alarm = _range(prom, "max(vigil_anomaly)", t0, t1, s.scrape_interval_s)
            score = _range(prom, "max(vigil_anomaly_score)", t0 - prof.baseline_s, t1, s.scrape_interval_s)
        else:
            alarm, score, entities = replay_scores(s, t0, t1, warm_s=min(prof.baseline_s, 120.0))
        metrics = {name: _range(prom, q, t0 - 60, t1, s.scrape_interval_s) for name, q in PLOT_QUERIES.items()}
        metrics["demo_fs_free_bytes"] = _range(
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
                meta={"run_id": run_id, "profile": prof.name, "seed": seed,
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
        chat_messages=chat_messages, step_s=s.scrape_interval_s, tail_s=prof.tail_s,
    )  # fmt: skip
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
