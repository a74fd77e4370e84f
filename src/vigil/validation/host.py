"""Host resource faults driven by stress-ng: CPU saturation, memory pressure, disk I/O saturation."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from vigil.validation import measure, procs
from vigil.validation.base import Fault, FaultError
from vigil.validation.journal import CleanupJournal


class _StressFault(Fault):
    def __init__(self, journal: CleanupJournal, *, max_duration_s: float = 120.0) -> None:
        super().__init__(journal, max_duration_s=max_duration_s)
        self._token = ""

    def stress_args(self) -> list[str]:
        raise NotImplementedError

    def inject(self) -> None:
        argv = ["stress-ng", *self.stress_args(), "--timeout", f"{int(self.max_duration_s)}s", "--quiet"]
        proc = self.spawn(argv)
        self._token = proc.vigil_token  # type: ignore[attr-defined]
        self._sid, self._sid_start = proc.pid, procs.start_time(proc.pid) or 0
        time.sleep(0.3)
        if proc.poll() is not None:
            raise FaultError(f"{self.type}: stress-ng exited at once with code {proc.returncode}")

    def workers(self) -> list[int]:
        return procs.fault_pids(self._token, self._sid, self._sid_start)


class CpuSaturation(_StressFault):
    """Every core busy with ``stress-ng --cpu``."""

    type = "cpu_saturation"

    def __init__(
        self, journal: CleanupJournal, *, workers: int = 0, load_pct: int = 100, max_duration_s: float = 120.0
    ) -> None:
        super().__init__(journal, max_duration_s=max_duration_s)
        self.n = workers or os.cpu_count() or 1
        self.load_pct = load_pct

    def params(self) -> dict[str, Any]:
        return {"workers": self.n, "load_pct": self.load_pct}

    def measure_baseline(self) -> dict[str, Any]:
        return {"host_cpu_busy": round(measure.cpu_busy_fraction(1.0), 3)}

    def stress_args(self) -> list[str]:
        return ["--cpu", str(self.n), "--cpu-load", str(self.load_pct)]

    def measure(self) -> dict[str, Any]:
        time.sleep(0.5)
        pids = self.workers()
        total0, idle0 = measure._cpu_times()
        cores = measure.process_cores(pids, 2.0)
        total1, idle1 = measure._cpu_times()
        busy = 1.0 - (idle1 - idle0) / max(1e-9, total1 - total0)
        # Other jobs may share the cores: saturated means the host is as busy as the stressors ask
        # (all of it, or half the cores for a weaker fault) *and* the stressors get a real share of
        # it (their own CPU time), not that they own every core.
        asked = min(1.0, self.n / (os.cpu_count() or 1) * self.load_pct / 100)
        return {
            "host_cpu_busy": round(busy, 3),
            "stress_cores": round(cores, 2),
            "loadavg_1m": float(Path("/proc/loadavg").read_text().split()[0]),
            "took_effect": busy >= 0.9 * asked and cores >= 0.2,
        }


class MemoryPressure(_StressFault):
    """``stress-ng --vm`` holding and re-dirtying ``fraction`` of the memory available at injection."""

    type = "memory_pressure"

    def __init__(
        self,
        journal: CleanupJournal,
        *,
        nbytes: int = 0,
        fraction: float = 0.3,
        max_duration_s: float = 120.0,
    ) -> None:
        super().__init__(journal, max_duration_s=max_duration_s)
        self.nbytes = nbytes
        self.fraction = fraction

    def params(self) -> dict[str, Any]:
        return {"nbytes": self.nbytes, "fraction": self.fraction}

    def measure_baseline(self) -> dict[str, Any]:
        info = measure.meminfo()
        if not self.nbytes:
            self.nbytes = int(info["MemAvailable"] * self.fraction)
        return {"mem_available_bytes": info["MemAvailable"], "mem_total_bytes": info["MemTotal"]}

    def stress_args(self) -> list[str]:
        # --vm-populate prefaults the mapping: the memory is taken in seconds, not while the fault ends.
        return ["--vm", "1", "--vm-bytes", f"{self.nbytes // (1 << 20)}M", "--vm-keep", "--vm-populate"]

    def measure(self) -> dict[str, Any]:
        # Enough to matter on any host: most of the target, or at least 1 GiB held by the stressors.
        target = min(0.8 * self.nbytes, float(1 << 30))
        rss = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rss = measure.rss_bytes(self.workers())
            if rss >= 0.8 * self.nbytes:
                break
            time.sleep(0.25)
        avail = measure.meminfo()["MemAvailable"]
        return {
            "stress_rss_bytes": rss,
            "target_bytes": self.nbytes,
            "mem_available_bytes": avail,
            "mem_available_drop_bytes": self.record.baseline["mem_available_bytes"] - avail,
            "took_effect": rss >= target,
        }


class DiskIoSaturation(_StressFault):
    """``stress-ng --hdd`` (sequential writes) plus ``--io`` (sync storms) on a real disk directory."""

    type = "disk_io_saturation"

    def __init__(
        self,
        journal: CleanupJournal,
        directory: Path,
        *,
        hdd_workers: int = 1,
        hdd_bytes: str = "256M",
        io_workers: int = 1,
        max_duration_s: float = 120.0,
    ) -> None:
        super().__init__(journal, max_duration_s=max_duration_s)
        self.directory = Path(directory)
        self.hdd_workers = hdd_workers
        self.hdd_bytes = hdd_bytes
        self.io_workers = io_workers

    def params(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "hdd_workers": self.hdd_workers,
            "hdd_bytes": self.hdd_bytes,
            "io_workers": self.io_workers,
        }

    def measure_baseline(self) -> dict[str, Any]:
        self.directory.mkdir(parents=True, exist_ok=True)
        r = measure.disk_rates(1.0)
        return {"disk_write_bytes_per_s": round(r.write_bytes_per_s), "disk_busy": round(r.busy_fraction, 3)}

    def stress_args(self) -> list[str]:
        # stress-ng removes its temp files on SIGTERM; a SIGKILLed run leaves them in this directory,
        # which the journal removes (see inject).
        # stress-ng reads a worker count of 0 as one per CPU, so no sync storm means no --io at all.
        io = ["--io", str(self.io_workers)] if self.io_workers > 0 else []
        return ["--hdd", str(self.hdd_workers), "--hdd-bytes", self.hdd_bytes, *io, "--temp-path", str(self.directory)]

    def inject(self) -> None:
        self.journaled(
            {
                "kind": "argv",
                "argv": [
                    "find",
                    str(self.directory),
                    "-mindepth",
                    "1",
                    "-name",
                    "tmp-stress-ng-*",
                    "-prune",
                    "-exec",
                    "rm",
                    "-rf",
                    "{}",
                    "+",
                ],
            }
        )
        super().inject()

    def measure(self) -> dict[str, Any]:
        time.sleep(0.5)
        pids = self.workers()
        io0 = measure.process_io_bytes(pids)
        r = measure.disk_rates(2.0)
        io1 = measure.process_io_bytes(self.workers())
        stress_rate = max(0, io1 - io0) / 2.0
        return {
            "disk_write_bytes_per_s": round(r.write_bytes_per_s),
            "disk_busy": round(r.busy_fraction, 3),
            "stress_write_bytes_per_s": round(stress_rate),
            # 5 MB/s sustained by the stressors alone is far beyond what the idle stack writes.
            "took_effect": stress_rate >= 5e6 or r.busy_fraction >= 0.5,
        }
