"""Building and running one fault of a campaign on the staged demo service and host."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil.config import Settings
from vigil.errors import VigilError
from vigil.validation import measure
from vigil.validation.base import Fault, FaultRecord
from vigil.validation.database import DatabaseContention, DatabaseOutage
from vigil.validation.host import CpuSaturation, DiskIoSaturation, MemoryPressure
from vigil.validation.journal import CleanupJournal
from vigil.validation.network import BandwidthLimit, NetLab, NetworkDelay, PacketLoss
from vigil.validation.process import ProcessCrash
from vigil.validation.profiles import WEAK, Profile, overlapped
from vigil.validation.storage import DiskFull

log = logging.getLogger("vigil.validation")


SERVICE_PROBES: dict[str, tuple[str, str]] = {
    "network_loss": ("GET", "/api/inventory"),
    "network_bandwidth": ("GET", "/api/inventory"),
    "network_delay": ("GET", "/api/inventory"),
    "db_outage": ("GET", "/api/orders"),
    "latency_regression": ("GET", "/api/orders"),
    "disk_full": ("POST", "/api/orders"),
    "process_crash": ("GET", "/api/orders"),
}


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


def _demo_pid(settings: Settings) -> int | None:
    from vigil.stack import procs as stack_procs

    rec = stack_procs.read_record(settings.run_dir, "demo_app")
    return rec.pid if rec is not None and stack_procs.is_alive(rec) else None


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


def run_entry(entry: str, stage: Stage, profile: Profile) -> list[FaultRecord]:
    """One entry of the schedule: a fault, or two overlapping ones, the second injected from a thread
    of its own ``overlap_offset_s`` after the first was; each cleans up after itself. If the first
    fails (or the run is stopped) before the second began, the second never starts. A paired record
    names the other fault in ``params["overlaps"]``."""
    kinds = overlapped(entry)
    if len(kinds) == 1:
        return [run_fault(kinds[0], stage, profile)]
    first, second = kinds
    begun: list[float] = []  # when the first fault was injected
    started, stop = threading.Event(), threading.Event()

    def first_injected(rec: FaultRecord) -> None:
        begun.append(rec.start)
        started.set()

    def later() -> FaultRecord | None:
        while not started.wait(0.5):
            if stop.is_set():
                return None
        if stop.wait(max(0.0, begun[0] + profile.overlap_offset_s - time.time())):
            return None
        return run_fault(second, stage, profile)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-overlap") as pool:
        pending = pool.submit(later)
        try:
            one = run_fault(first, stage, profile, on_start=first_injected)
        except BaseException:
            stop.set()  # leaving the pool waits for a second fault already in place to be cleaned up
            raise
        two = pending.result()
    assert two is not None  # None only once stopped, and whatever stopped it raised above
    one.params["overlaps"], two.params["overlaps"] = second, first
    return [one, two]


def run_fault(
    kind: str, stage: Stage, profile: Profile, on_start: Callable[[FaultRecord], None] | None = None
) -> FaultRecord:
    """Inject one fault, hold it ``fault_s``, clean it up; ``on_start`` is told once it is in place."""
    fault = build_fault(kind, stage, profile)
    with fault as rec:
        if on_start is not None:
            on_start(rec)
        rec.effect["service_probe"] = service_probe(stage.settings, kind)
        remaining = rec.start + profile.fault_s - time.time()
        if remaining > 0:
            time.sleep(remaining)
    log.info("%s: %.0f s, took effect: %s", kind, rec.end - rec.start, rec.took_effect)
    return rec
