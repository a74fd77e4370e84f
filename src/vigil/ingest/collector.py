"""``vigil collect``: pull series from a Prometheus-compatible API into the archive.

Each cycle resumes one step after the newest archived step and stops ``lag_s`` behind now, on a
fixed grid of multiples of ``step_s``; windows never cross an hour (one archive partition) and
each is written atomically, so a crash at any point loses at most the window in flight and the
next cycle re-queries exactly that window.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from vigil.errors import VigilError
from vigil.ingest.archive import Archive, hour_windows
from vigil.ingest.quality import QualityTracker, TargetHealth
from vigil.prometheus import PromClient

log = logging.getLogger(__name__)

POINTS_PER_REQUEST = 1_000_000  # ~40 MB of JSON per range query
SETTLE_S = 120.0  # steps older than this are archived even when empty: the server had nothing


@dataclass(frozen=True)
class CycleResult:
    samples: int
    series: int
    windows: int
    start_ms: int | None  # first step collected, None when there was nothing new
    end_ms: int | None
    seconds: float

    @property
    def rate(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else math.nan


class MetricsCollector:
    """One collection pipeline: client -> archive, with quality accounting on the way."""

    def __init__(
        self,
        client: PromClient,
        archive: Archive,
        *,
        match: str = '{__name__=~".+"}',
        step_s: float = 1.0,
        lag_s: float = 5.0,
        chunk_s: float = 600.0,
        backfill_s: float = 3600.0,
        retention_s: float | None = None,
        tracker: QualityTracker | None = None,
    ) -> None:
        self.client = client
        self.archive = archive
        self.match = match
        self.step_ms = max(1, round(step_s * 1000))
        self.lag_s = lag_s
        self.chunk_ms = max(self.step_ms, round(chunk_s * 1000))
        self.backfill_s = backfill_s
        self.retention_s = retention_s
        self.tracker = tracker or QualityTracker()
        self._archive_bytes: int | None = None
        self._series_hint: int | None = None

    def _chunk_ms(self, start_ms: int, end_ms: int) -> int:
        # One response holds series x steps points; bound it so a catch-up after downtime on a
        # server with many series does not decode hundreds of MB of JSON at once.
        if end_ms - start_ms <= self.chunk_ms and self._series_hint is not None:
            return self.chunk_ms
        if self._series_hint is None:
            counted = self.client.query(f"count({self.match})")
            self._series_hint = max(1, int(counted[0].value)) if counted else 1
        steps = max(1, POINTS_PER_REQUEST // self._series_hint)
        return max(self.step_ms, min(self.chunk_ms, steps * self.step_ms))

    def next_start_ms(self, now_s: float) -> int:
        last = self.archive.last_end_ms()
        if last is None:
            return _ceil_to(round((now_s - self.backfill_s) * 1000), self.step_ms)
        return _ceil_to(last + 1, self.step_ms)

    def run_once(self, now_s: float | None = None) -> CycleResult:
        """Collect everything new up to ``now - lag``; raises UpstreamUnavailable if unreachable."""
        t0 = time.monotonic()
        now = time.time() if now_s is None else now_s
        self.archive.clean_temp()
        start = self.next_start_ms(now)
        end = (round((now - self.lag_s) * 1000) // self.step_ms) * self.step_ms
        samples = windows = 0
        keys: set[tuple[tuple[str, str], ...]] = set()
        settled_ms = round((now - SETTLE_S) * 1000)
        written_until: int | None = None
        for lo, window_hi in hour_windows(start, end, self.step_ms, self._chunk_ms(start, end)):
            series = self.client.query_range(self.match, lo / 1000, window_hi / 1000, self.step_ms / 1000)
            hi = window_hi
            if window_hi > settled_ms:
                # Recent steps that no series has yet are not final: VictoriaMetrics hides its
                # newest 30 s by default, a busy Prometheus may lag. Archiving them as empty would
                # skip them for good, so progress stops at the newest step that has data (``up``
                # has a value for every target while the server scrapes at all).
                newest = max((round(s.timestamps[-1] * 1000) for s in series if len(s.timestamps)), default=None)
                if newest is None or newest < lo:
                    break
                hi = min(window_hi, int(newest))
            samples += self.archive.write_window(series, lo, hi)
            self.tracker.observe_window(series, lo, hi, self.step_ms)
            keys.update(s.key for s in series)
            self._series_hint = max(len(series), 1)
            windows += 1
            written_until = hi
            if hi < window_hi:
                break
        if written_until is not None:
            self.archive.compact(before_ms=written_until + 1)
        if self.retention_s is not None:
            self.archive.apply_retention(self.retention_s, now)
        self.tracker.observe_targets(self.target_health())
        seconds = time.monotonic() - t0
        if self._archive_bytes is None or windows:
            self._archive_bytes = self.archive.size_bytes()
        last = self.archive.last_end_ms()
        self.tracker.observe_collection(
            samples,
            seconds,
            archived_until_s=None if last is None else last / 1000,
            archive_bytes=self._archive_bytes,
        )
        return CycleResult(samples, len(keys), windows, start if windows else None, written_until, seconds)

    def target_health(self) -> list[TargetHealth]:
        return self.target_health_of(self.client)

    @staticmethod
    def target_health_of(client: PromClient) -> list[TargetHealth]:
        """``up``, scrape duration and samples scraped of every target the server scrapes."""
        by_target: dict[tuple[str, str], TargetHealth] = {}
        for s in client.query("up"):
            key = (s.labels.get("job", ""), s.labels.get("instance", ""))
            by_target[key] = TargetHealth(key[0], key[1], s.value, timestamp=s.timestamp)
        extra = (("scrape_duration_seconds", "scrape_duration_s"), ("scrape_samples_scraped", "samples_scraped"))
        for metric, attr in extra:
            for s in client.query(metric):
                target = by_target.get((s.labels.get("job", ""), s.labels.get("instance", "")))
                if target is not None:
                    setattr(target, attr, s.value)
        return list(by_target.values())

    def follow(
        self, interval_s: float, stop: threading.Event, on_cycle: Callable[[CycleResult], None] | None = None
    ) -> None:
        """Collect every ``interval_s`` until ``stop`` is set; an unreachable server is retried."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                result = self.run_once()
                if on_cycle is not None:
                    on_cycle(result)
            except (VigilError, OSError) as exc:
                # Prometheus down, a rejected query, a full disk: all may pass, so count the
                # failure (VigilCollectionErrors alerts on it) and retry rather than exit.
                self.tracker.observe_collection(0, 0.0, ok=False)
                log.warning("collection failed, retrying in %.0fs: %s", interval_s, exc)
            stop.wait(max(0.0, interval_s - (time.monotonic() - started)))


def _ceil_to(ms: int, step_ms: int) -> int:
    return -(-ms // step_ms) * step_ms
