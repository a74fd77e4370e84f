"""Database faults for the watched service's SQLite file: a full outage, and lock contention.

SQLite takes file locks, so another process holding an exclusive lock is a real dependency outage:
the service's queries wait for their busy timeout and then fail with ``database is locked``. Holding
the lock for short bursts instead gives a latency regression from real contention, without errors.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vigil.validation.base import Fault, FaultError
from vigil.validation.journal import CleanupJournal


def read_probe(db_path: Path, *, n: int = 5, timeout_s: float = 0.5, spacing_s: float = 0.0) -> dict[str, Any]:
    """Time ``n`` real reads through a fresh connection each; count the ones that fail.

    ``spacing_s`` spreads the reads at random gaps, so they arrive like independent requests and not
    all in the free window right after a burst of contention.
    """
    latencies, errors, last_error = [], 0, ""
    rng = random.Random()
    for _ in range(n):
        if spacing_s:
            time.sleep(rng.uniform(0, spacing_s))
        t0 = time.perf_counter()
        try:
            conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=timeout_s)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            errors += 1
            last_error = str(exc)
        latencies.append((time.perf_counter() - t0) * 1000)
    return {
        "reads": n,
        "read_errors": errors,
        "read_p50_ms": round(statistics.median(latencies), 2),
        "read_mean_ms": round(statistics.fmean(latencies), 2),
        "read_max_ms": round(max(latencies), 2),
        "last_error": last_error,
    }


class _LockFault(Fault):
    hold_ms = 0
    period_ms = 0

    def __init__(self, journal: CleanupJournal, db_path: Path, *, max_duration_s: float = 120.0) -> None:
        super().__init__(journal, max_duration_s=max_duration_s)
        self.db_path = Path(db_path)

    def params(self) -> dict[str, Any]:
        return {"db_path": str(self.db_path), "hold_ms": self.hold_ms, "period_ms": self.period_ms}

    def measure_baseline(self) -> dict[str, Any]:
        if not self.db_path.exists():
            raise FaultError(f"{self.type}: database {self.db_path} does not exist")
        return read_probe(self.db_path, n=9)

    def inject(self) -> None:
        argv = [
            sys.executable, "-m", "vigil.validation.dblock", str(self.db_path),
            "--hold-ms", str(self.hold_ms), "--period-ms", str(self.period_ms),
            "--deadline-s", str(int(self.max_duration_s)),
        ]  # fmt: skip
        proc = self.spawn(argv, stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline().strip() if proc.stdout else ""
        if line != "locked":
            raise FaultError(f"{self.type}: lock holder did not take the lock ({line or proc.poll()})")


class DatabaseOutage(_LockFault):
    """Another process holds an exclusive lock on the service's database for the whole fault."""

    type = "db_outage"

    def measure(self) -> dict[str, Any]:
        probe = read_probe(self.db_path, n=3, timeout_s=0.3)
        probe["took_effect"] = probe["read_errors"] == probe["reads"]
        return probe


class DatabaseContention(_LockFault):
    """Exclusive locks held in bursts (``hold_ms`` of every ``period_ms``): slower queries, few errors."""

    type = "latency_regression"

    def __init__(
        self,
        journal: CleanupJournal,
        db_path: Path,
        *,
        hold_ms: int = 150,
        period_ms: int = 250,
        max_duration_s: float = 120.0,
    ) -> None:
        super().__init__(journal, db_path, max_duration_s=max_duration_s)
        self.hold_ms = hold_ms
        self.period_ms = period_ms

    def measure(self) -> dict[str, Any]:
        probe = read_probe(self.db_path, n=12, timeout_s=5.0, spacing_s=self.period_ms / 1000)
        # Against the baseline's median: one slow read among its few (a page-cache miss, the service's
        # own write) would otherwise set the bar for the whole fault.
        base = self.record.baseline.get("read_p50_ms", 0.0)
        probe["read_mean_ratio"] = round(probe["read_mean_ms"] / max(base, 0.05), 1)
        # A read arriving at a random moment waits hold/period * hold/2 on average: 45 ms at 150/250.
        expected = self.hold_ms / self.period_ms * self.hold_ms / 2
        probe["took_effect"] = probe["read_mean_ms"] >= max(5.0, 0.3 * expected, 5 * base)
        return probe
