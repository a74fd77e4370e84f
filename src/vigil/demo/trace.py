"""The demand shape the load generator replays: a real trace, time-compressed (no I/O beyond reading it).

NAB's ``realKnownCause/nyc_taxi.csv`` counts New York taxi passengers per 30 minutes from July 2014 to
January 2015: a daily cycle, weekly shape, and known anomalies (NYC marathon, Thanksgiving, Christmas,
New Year, a January blizzard). Replaying it with ``day_s`` wall seconds per trace day gives the demo
service realistic, bursty, non-synthetic load.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from vigil.errors import DataError

TRACE_RELPATH = Path("nab") / "data" / "realKnownCause" / "nyc_taxi.csv"


def find_trace(roots: list[Path]) -> Path:
    """The trace under the first root that has it (``VIGIL_DATA_DIR``, then ``$VIGIL_HOME/datasets``)."""
    for root in roots:
        if (root / TRACE_RELPATH).is_file():
            return root / TRACE_RELPATH
    raise DataError(
        f"the load generator's trace {TRACE_RELPATH} is not under {' or '.join(str(r) for r in roots)}",
        hint="set VIGIL_DATA_DIR to the folder holding nab/, or run `vigil datasets fetch nab`",
    )


def _utc(text: str) -> float:
    # NAB timestamps carry no zone; reading them as UTC keeps the replay independent of the host's TZ.
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Trace:
    timestamps: np.ndarray  # unix seconds, increasing
    values: np.ndarray  # float64

    @classmethod
    def from_csv(cls, path: Path) -> Trace:
        if not path.exists():
            raise DataError(f"trace {path} not found", hint="set VIGIL_DATA_DIR to the folder holding nab/")
        ts, vals = [], []
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                ts.append(_utc(row["timestamp"]))
                vals.append(float(row["value"]))
        if len(ts) < 2:
            raise DataError(f"trace {path} has fewer than two rows")
        return cls(np.asarray(ts, dtype=np.float64), np.asarray(vals, dtype=np.float64))

    def start_offset(self, start: str) -> float:
        """Seconds into the trace of the first row at or after ``start`` (an ISO date or timestamp)."""
        if not start:
            return 0.0
        try:
            when = _utc(start)
        except ValueError:
            raise DataError(f"trace start {start!r} is not an ISO date like 2014-11-01") from None
        idx = int(np.searchsorted(self.timestamps, when))
        if idx >= len(self.timestamps):
            raise DataError(f"trace start {start} is after the trace ends")
        return float(self.timestamps[idx] - self.timestamps[0])


@dataclass(frozen=True)
class Replay:
    """Maps wall-clock seconds since start to a request rate following the trace, looping at its end."""

    trace: Trace
    base_rps: float
    day_s: float
    offset_s: float = 0.0  # trace seconds skipped at the start

    @property
    def speedup(self) -> float:
        return 86400.0 / self.day_s

    def trace_time(self, elapsed_s: float) -> float:
        span = float(self.trace.timestamps[-1] - self.trace.timestamps[0])
        return float(self.trace.timestamps[0] + (self.offset_s + elapsed_s * self.speedup) % span)

    def value(self, elapsed_s: float) -> float:
        return float(np.interp(self.trace_time(elapsed_s), self.trace.timestamps, self.trace.values))

    def rate(self, elapsed_s: float) -> float:
        """Requests per second: ``base_rps`` times the trace value relative to its mean."""
        return self.base_rps * self.value(elapsed_s) / float(self.trace.values.mean())
