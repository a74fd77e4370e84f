"""Service counters and latency histograms held as plain state, exported by the metrics collector.

prometheus-client's ``Histogram``/``Counter`` register themselves in a global registry; Vigil keeps
its own numbers instead so that one engine equals one set of metrics (tests build as many engines
as they like) and the collector renders them at scrape time.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

# Seconds. The serving path is meant to stay well under 25 ms, so most buckets sit below that.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LatencyHistogram:
    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._counts = [0] * (len(buckets) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(self.buckets, seconds)
        with self._lock:
            self._counts[index] += 1
            self._sum += seconds

    def snapshot(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative ``(le, count)`` pairs ending in ``+Inf``, and the sum (the collector's format)."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        out: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*map(str, self.buckets), "+Inf"), counts, strict=True):
            running += count
            out.append((bound, running))
        return out, total

    @property
    def count(self) -> int:
        with self._lock:
            return sum(self._counts)


class Counters:
    """Named counters with one optional label value each, e.g. ``samples{outcome="accepted"}``."""

    def __init__(self) -> None:
        self._values: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._lock = threading.Lock()

    def inc(self, name: str, label: str = "", amount: float = 1.0) -> None:
        with self._lock:
            self._values[name][label] += amount

    def get(self, name: str, label: str = "") -> float:
        with self._lock:
            return self._values.get(name, {}).get(label, 0.0)

    def items(self, name: str) -> list[tuple[str, float]]:
        with self._lock:
            return sorted(self._values.get(name, {}).items())


class ServiceStats:
    def __init__(self) -> None:
        self.counters = Counters()
        self.ingest_to_score = LatencyHistogram()
        self.score_to_alert = LatencyHistogram()
        self.request_seconds = LatencyHistogram()
