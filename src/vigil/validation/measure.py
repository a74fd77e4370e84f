"""Measurements that prove a fault took effect, taken from the kernel's own counters or real requests."""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import requests

from vigil.validation import procs


def _cpu_times() -> tuple[float, float]:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [float(v) for v in fields[:8]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values), idle


def cpu_busy_fraction(interval_s: float = 1.0) -> float:
    """Share of all cores' time spent busy over ``interval_s`` (0..1)."""
    total0, idle0 = _cpu_times()
    time.sleep(interval_s)
    total1, idle1 = _cpu_times()
    span = total1 - total0
    return 0.0 if span <= 0 else 1.0 - (idle1 - idle0) / span


def process_cores(pids: Iterable[int], interval_s: float = 1.0) -> float:
    """Cores' worth of CPU the given processes burned over ``interval_s``."""
    pid_list = list(pids)
    before = sum(procs.cpu_seconds(p) for p in pid_list)
    time.sleep(interval_s)
    after = sum(procs.cpu_seconds(p) for p in pid_list)
    return max(0.0, after - before) / interval_s


def meminfo() -> dict[str, int]:
    """``/proc/meminfo`` in bytes."""
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


def rss_bytes(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _whole_disks() -> list[str]:
    # Physical disks only: partitions, loop, ram and zram devices would double count or mislead.
    names = []
    for dev in os.listdir("/sys/block"):
        if dev.startswith(("loop", "ram", "zram", "dm-", "md")):
            continue
        names.append(dev)
    return names


def diskstats() -> dict[str, tuple[int, int, int]]:
    """Per whole disk: (sectors read, sectors written, ms spent doing I/O)."""
    disks = set(_whole_disks())
    out = {}
    for line in Path("/proc/diskstats").read_text().splitlines():
        f = line.split()
        if len(f) >= 13 and f[2] in disks:
            out[f[2]] = (int(f[5]), int(f[9]), int(f[12]))
    return out


@dataclass
class DiskRates:
    read_bytes_per_s: float
    write_bytes_per_s: float
    busy_fraction: float  # the busiest disk's utilisation


def disk_rates(interval_s: float = 1.0) -> DiskRates:
    before = diskstats()
    t0 = time.monotonic()
    time.sleep(interval_s)
    after = diskstats()
    span = time.monotonic() - t0
    read = sum(after[d][0] - before[d][0] for d in after if d in before) * 512 / span
    write = sum(after[d][1] - before[d][1] for d in after if d in before) * 512 / span
    busy = max(((after[d][2] - before[d][2]) / 1000 / span for d in after if d in before), default=0.0)
    return DiskRates(read, write, min(1.0, busy))


def process_io_bytes(pids: Iterable[int]) -> int:
    """Bytes the processes caused to be written to storage (``/proc/<pid>/io`` write_bytes)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                if line.startswith("write_bytes:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@dataclass
class ProbeResult:
    requests: int
    errors: int
    p50_ms: float
    p90_ms: float
    statuses: dict[str, int]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, float | int | dict[str, int]]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 4),
            "p50_ms": round(self.p50_ms, 2),
            "p90_ms": round(self.p90_ms, 2),
            "statuses": self.statuses,
        }


def http_probe(
    url: str,
    *,
    n: int = 10,
    timeout_s: float = 2.0,
    method: str = "GET",
    json_body: object = None,
    deadline_s: float | None = None,
    spacing_s: float = 0.0,
) -> ProbeResult:
    """Send up to ``n`` real requests (none started after ``deadline_s``); errors are connection
    failures, timeouts and 5xx answers. At least one request is always sent. ``spacing_s`` waits a
    random gap up to it before each request, so that they arrive like independent clients' and not in
    step with a periodic fault."""
    latencies: list[float] = []
    errors = 0
    statuses: dict[str, int] = {}
    stop_at = time.monotonic() + deadline_s if deadline_s is not None else float("inf")
    with requests.Session() as session:
        for _ in range(n):
            if latencies and time.monotonic() >= stop_at:
                break
            if spacing_s:
                time.sleep(random.uniform(0, spacing_s))
            t0 = time.perf_counter()
            try:
                resp = session.request(method, url, timeout=timeout_s, json=json_body)
                key = str(resp.status_code)
                if resp.status_code >= 500:
                    errors += 1
            except requests.RequestException as exc:
                key = type(exc).__name__
                errors += 1
            latencies.append((time.perf_counter() - t0) * 1000)
            statuses[key] = statuses.get(key, 0) + 1
    ordered = sorted(latencies)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] if ordered else 0.0
    return ProbeResult(len(ordered), errors, statistics.median(ordered) if ordered else 0.0, p90, statuses)
