"""The campaign's hold on the live stack: the stack rewired to the staged demo service, training on
the baseline, and the waits between phases (scoring started, the host settled, every alarm off)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from vigil.config import Settings, settings_overrides
from vigil.errors import PortInUse, UpstreamUnavailable, VigilError
from vigil.validation import measure
from vigil.validation.evidence import prom_client
from vigil.validation.journal import CleanupJournal
from vigil.validation.profiles import Profile

log = logging.getLogger("vigil.validation")


@dataclass
class StackHandle:
    settings: Settings
    restart_previous: bool  # a stack was running before the campaign: start it again afterwards


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


def wait_scoring(settings: Settings, timeout_s: float, expected: int = 1) -> int:
    """Wait until Prometheus holds fresh ``vigil_anomaly`` series for ``expected`` entities (or the
    timeout passes with at least one); how many entities are scored."""
    prom = prom_client(settings)
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


def lab_name(home: Path) -> str:
    """One lab per state directory, so two stacks on one host never share a namespace or subnet."""
    return f"v{zlib.crc32(str(home.resolve()).encode()) % 10**6}"
