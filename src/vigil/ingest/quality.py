"""Data-quality accounting for collected metrics, and its ``vigil_data_*`` exposition.

What PromQL can and cannot show shapes the measures here. A range query resamples onto a step
grid with a 5-minute lookback, so a missed scrape inside a live series is invisible; what *is*
visible is a series ending (Prometheus writes a stale marker when a target's scrape fails or the
series disappears, and the series drops out of every later step). Gaps are therefore counted per
series from its first appearance to the end of each window, and a series that was seen before and
is now absent counts every step as missing until it has been gone ``forget_after_s``. Stale
markers themselves only exist in raw streams (remote_write); :meth:`QualityTracker.observe_raw`
counts them there by their exact bit pattern.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vigil.features.counters import is_stale_marker
from vigil.ingest.samples import window_samples
from vigil.prometheus import RangeSeries

_FAMILY_SUFFIX = re.compile(r"_(bucket|sum|count)\Z")
_COUNTER_NAME = re.compile(r"_(total|count|bucket)\Z")


@functools.lru_cache(maxsize=65536)
def metric_family(name: str) -> str:
    """Family of a sample name: histogram/summary parts (``_bucket``, ``_sum``, ``_count``) fold in."""
    return _FAMILY_SUFFIX.sub("", name)


def is_scraped_name(name: str) -> bool:
    """False for series Prometheus derives itself (alert state, recording rules): they start and
    end with the condition they track, so an ending one is not a gap."""
    return name not in ("ALERTS", "ALERTS_FOR_STATE") and ":" not in name


@functools.lru_cache(maxsize=65536)
def is_counter_name(name: str) -> bool:
    """Names Prometheus conventions reserve for monotonic counters."""
    return bool(_COUNTER_NAME.search(name))


@dataclass
class FamilyQuality:
    family: str
    series: int = 0
    expected_steps: int = 0
    present_steps: int = 0
    nan_samples: int = 0
    counter_resets: int = 0
    stale_series: int = 0

    @property
    def missing_steps(self) -> int:
        return self.expected_steps - self.present_steps

    @property
    def completeness(self) -> float:
        return 1.0 if self.expected_steps == 0 else self.present_steps / self.expected_steps

    def add(self, other: FamilyQuality) -> None:
        self.expected_steps += other.expected_steps
        self.present_steps += other.present_steps
        self.nan_samples += other.nan_samples
        self.counter_resets += other.counter_resets

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["missing_steps"] = self.missing_steps
        d["completeness"] = round(self.completeness, 6)
        return d


@dataclass
class TargetHealth:
    job: str
    instance: str
    up: float
    scrape_duration_s: float = math.nan
    samples_scraped: float = math.nan
    timestamp: float = math.nan

    def to_dict(self) -> dict[str, object]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


@dataclass
class QualityReport:
    generated_at: float
    window_s: float
    step_s: float
    families: dict[str, FamilyQuality]
    targets: list[TargetHealth]
    series: int
    stale_series: int
    stale_markers: int
    raw_nan_samples: int
    collection: dict[str, float | None] = field(default_factory=dict)

    @property
    def completeness(self) -> float:
        expected = sum(f.expected_steps for f in self.families.values())
        present = sum(f.present_steps for f in self.families.values())
        return 1.0 if expected == 0 else present / expected

    def to_dict(self) -> dict[str, object]:
        return {
            "generated_at": self.generated_at,
            "window_s": self.window_s,
            "step_s": self.step_s,
            "completeness": round(self.completeness, 6),
            "series": self.series,
            "stale_series": self.stale_series,
            "stale_markers": self.stale_markers,
            "raw_nan_samples": self.raw_nan_samples,
            "targets": [t.to_dict() for t in self.targets],
            "targets_down": sum(1 for t in self.targets if t.up < 1),
            "families": {name: f.to_dict() for name, f in sorted(self.families.items())},
            "collection": self.collection,
        }


@dataclass
class _SeriesState:
    family: str
    last_seen_ms: int
    last_value: float = math.nan
    target: tuple[str, str] = ("", "")


def _target(labels: dict[str, str]) -> tuple[str, str]:
    return labels.get("job", ""), labels.get("instance", "")


class QualityTracker:
    """Accumulates quality measures over a sliding window of collection windows (thread-safe).

    Parameters
    ----------
    window_s : how far back :meth:`report` and the exported gauges look.
    forget_after_s : a series absent this long stops counting as missing (it is gone, not gapped).
    """

    def __init__(self, window_s: float = 300.0, forget_after_s: float = 600.0) -> None:
        self.window_s = window_s
        self.forget_after_s = forget_after_s
        self._lock = threading.Lock()
        self._series: dict[tuple[tuple[str, str], ...], _SeriesState] = {}
        self._windows: deque[tuple[int, dict[str, FamilyQuality]]] = deque()
        self._targets: list[TargetHealth] = []
        self._step_s = math.nan
        self._stale_markers = 0
        self._raw_nan = 0
        self._samples_total = 0
        self._errors_total = 0
        self._cycles: deque[tuple[float, int, float]] = deque(maxlen=20)  # (wall end, samples, seconds)
        self._archived_until_s = math.nan
        self._last_success_s = math.nan
        self._archive_bytes = math.nan

    # -- inputs -------------------------------------------------------------------------------
    def remember(self, labels: Iterable[dict[str, str]], seen_ms: int) -> None:
        """Know series seen before the first window, so one absent from all of it counts as missing.

        A one-off report has no earlier cycles: without this a target that died before its window
        began would leave no trace at all, where the collector following along reports it as gaps.
        """
        with self._lock:
            for lab in labels:
                name = lab.get("__name__", "")
                if not is_scraped_name(name):
                    continue
                key = tuple(sorted(lab.items()))
                if key not in self._series:
                    self._series[key] = _SeriesState(metric_family(name), seen_ms, target=_target(lab))

    def observe_window(self, series: Sequence[RangeSeries], start_ms: int, end_ms: int, step_ms: int) -> None:
        """Account for one collected window ``[start_ms, end_ms]`` on the ``step_ms`` grid.

        A step without a sample is a gap only when the series' target was not up at that step
        (``up`` is 0 or absent there), taken from the ``up`` series in ``series``. A series that
        ends while its target keeps answering is churn, not lost data: a network interface or a
        mount went away, a histogram label combination stopped occurring. Series whose target is
        unknown (no ``job``/``instance``, or ``up`` not collected) count every missing step.
        """
        n_steps = (end_ms - start_ms) // step_ms + 1
        up = self._up_by_target(series, start_ms, end_ms, step_ms, n_steps)
        # Per-series measures come from whole-window array operations; only the bookkeeping below
        # loops over series (a per-series numpy pass cost ~60 us a series, most of a cycle's CPU).
        w = window_samples(series, start_ms, end_ms)
        idx, vals = w.index, w.values
        step = (w.ts_ms - start_ms) // step_ms
        same_series = np.zeros(len(idx), dtype=bool)
        same_series[1:] = idx[1:] == idx[:-1]
        new_step = ~same_series
        new_step[1:] |= step[1:] != step[:-1]
        present_n = np.bincount(idx, weights=new_step, minlength=w.rows).astype(np.int64)
        nan = np.isnan(vals)
        nan_n = np.bincount(idx, weights=nan, minlength=w.rows).astype(np.int64)
        drops = np.zeros(len(idx), dtype=bool)
        with np.errstate(invalid="ignore"):
            drops[1:] = same_series[1:] & (vals[1:] < vals[:-1])
        drops_n = np.bincount(idx, weights=drops, minlength=w.rows).astype(np.int64)
        last_finite = np.full(w.rows, math.nan)
        finite_at = np.flatnonzero(~nan)
        if len(finite_at):
            last_of_row = np.append(idx[finite_at][1:] != idx[finite_at][:-1], True)
            last_finite[idx[finite_at][last_of_row]] = vals[finite_at][last_of_row]
        fams: dict[str, FamilyQuality] = {}
        seen = set()
        with self._lock:
            self._step_s = step_ms / 1000
            for s, r in zip(series, w.row.tolist(), strict=True):
                name = s.name
                if not is_scraped_name(name):
                    continue
                key = s.key
                seen.add(key)
                state = self._series.get(key)
                fam = metric_family(name)
                fq = fams.setdefault(fam, FamilyQuality(fam))
                if r < 0:
                    continue
                begin, count = int(w.starts[r]), int(w.counts[r])
                known = state is not None and state.last_seen_ms >= start_ms - self.forget_after_s * 1000
                first = 0 if known else int(step[begin])
                present = int(present_n[r])  # every present step is at or after ``first``
                gaps = 0
                if present < n_steps - first:
                    mask = np.zeros(n_steps, dtype=bool)
                    mask[step[begin : begin + count]] = True
                    gaps = self._gaps(~mask[first:], up, s.labels, first)
                fq.present_steps += present
                fq.expected_steps += present + gaps
                fq.nan_samples += int(nan_n[r])
                if is_counter_name(name):
                    prev = state.last_value if state is not None else math.nan
                    fq.counter_resets += int(drops_n[r]) + int(vals[begin] < prev)
                last_value = float(last_finite[r])
                if math.isnan(last_value):
                    last_value = state.last_value if state else math.nan
                self._series[key] = _SeriesState(fam, int(w.ts_ms[begin + count - 1]), last_value, _target(s.labels))
            horizon = start_ms - self.forget_after_s * 1000
            for key, state in list(self._series.items()):
                if key in seen:
                    continue
                if state.last_seen_ms < horizon:
                    del self._series[key]
                    continue
                fq = fams.setdefault(state.family, FamilyQuality(state.family))
                fq.expected_steps += self._gaps(np.ones(n_steps, dtype=bool), up, None, 0, state.target)
            self._windows.append((end_ms, fams))
            self._trim(end_ms)

    @staticmethod
    def _up_by_target(
        series: Sequence[RangeSeries], start_ms: int, end_ms: int, step_ms: int, n_steps: int
    ) -> dict[tuple[str, str], np.ndarray] | None:
        """Per (job, instance): steps where ``up == 1``; None when ``up`` was not collected."""
        ups = [s for s in series if s.name == "up"]
        if not ups:
            return None
        out = {}
        for s in ups:
            ts_ms = np.round(s.timestamps * 1000).astype(np.int64)
            keep = (ts_ms >= start_ms) & (ts_ms <= end_ms) & (s.values == 1)
            ok = np.zeros(n_steps, dtype=bool)
            ok[(ts_ms[keep] - start_ms) // step_ms] = True
            out[_target(s.labels)] = ok
        return out

    @staticmethod
    def _gaps(
        missing: np.ndarray,
        up: dict[tuple[str, str], np.ndarray] | None,
        labels: dict[str, str] | None,
        first: int,
        target: tuple[str, str] | None = None,
    ) -> int:
        target = target if target is not None else _target(labels or {})
        if up is None or target == ("", ""):
            return int(missing.sum())
        alive = up.get(target)
        if alive is None:
            return int(missing.sum())
        return int((missing & ~alive[first:]).sum())

    def observe_targets(self, targets: Iterable[TargetHealth]) -> None:
        with self._lock:
            self._targets = sorted(targets, key=lambda t: (t.job, t.instance))

    def observe_collection(
        self,
        samples: int,
        seconds: float,
        *,
        archived_until_s: float | None = None,
        ok: bool = True,
        archive_bytes: float | None = None,
    ) -> None:
        with self._lock:
            if not ok:
                self._errors_total += 1
                return
            now = time.time()
            self._samples_total += samples
            self._cycles.append((now, samples, seconds))
            self._last_success_s = now
            if archived_until_s is not None:
                self._archived_until_s = archived_until_s
            if archive_bytes is not None:
                self._archive_bytes = archive_bytes

    def observe_raw(self, values: Iterable[float]) -> None:
        """Count NaN samples and stale markers in a raw sample stream (e.g. remote_write)."""
        stale = nan = 0
        for v in values:
            if v != v:  # NaN
                if is_stale_marker(v):
                    stale += 1
                else:
                    nan += 1
        with self._lock:
            self._stale_markers += stale
            self._raw_nan += nan

    def _trim(self, newest_ms: int) -> None:
        while self._windows and self._windows[0][0] < newest_ms - self.window_s * 1000:
            self._windows.popleft()

    # -- outputs ------------------------------------------------------------------------------
    def report(self, now_s: float | None = None) -> QualityReport:
        now = time.time() if now_s is None else now_s
        with self._lock:
            families: dict[str, FamilyQuality] = {}
            for _, fams in self._windows:
                for name, fq in fams.items():
                    families.setdefault(name, FamilyQuality(name)).add(fq)
            newest = max((s.last_seen_ms for s in self._series.values()), default=0)
            stale_after_ms = 2 * self._step_s * 1000 if math.isfinite(self._step_s) else 0
            stale = 0
            for state in self._series.values():
                fq = families.setdefault(state.family, FamilyQuality(state.family))
                fq.series += 1
                if newest - state.last_seen_ms > stale_after_ms:
                    fq.stale_series += 1
                    stale += 1
            if self._cycles:
                total_samples = sum(c[1] for c in self._cycles)
                total_seconds = sum(c[2] for c in self._cycles)
                busy_rate = total_samples / total_seconds if total_seconds > 0 else math.nan
                span = self._cycles[-1][0] - self._cycles[0][0]
                wall_rate = sum(c[1] for c in list(self._cycles)[1:]) / span if span > 0 else math.nan
            else:
                busy_rate = wall_rate = math.nan
            collection = {
                "samples_total": self._samples_total,
                "errors_total": self._errors_total,
                "samples_per_second": _none_nan(wall_rate),
                "samples_per_busy_second": _none_nan(busy_rate),
                "last_success": _none_nan(self._last_success_s),
                "archived_until": _none_nan(self._archived_until_s),
                "lag_s": _none_nan(now - self._archived_until_s),
                "archive_bytes": _none_nan(self._archive_bytes),
            }
            return QualityReport(
                generated_at=now,
                window_s=self.window_s,
                step_s=self._step_s,
                families=families,
                targets=list(self._targets),
                series=len(self._series),
                stale_series=stale,
                stale_markers=self._stale_markers,
                raw_nan_samples=self._raw_nan,
                collection=collection,
            )


def _none_nan(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


class DataQualityCollector(Collector):
    """prometheus-client collector that renders a :class:`QualityTracker` at scrape time.

    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> registry.register(DataQualityCollector(QualityTracker()))
    >>> registry.get_sample_value("vigil_data_samples_archived_total")
    0.0
    """

    def __init__(self, tracker: QualityTracker) -> None:
        self.tracker = tracker

    def collect(self) -> Iterator[Metric]:
        r = self.tracker.report()
        tl = ["job", "instance"]
        up = GaugeMetricFamily("vigil_data_target_up", "1 if the target's last scrape succeeded", labels=tl)
        dur = GaugeMetricFamily("vigil_data_target_scrape_duration_seconds", "Last scrape duration", labels=tl)
        smp = GaugeMetricFamily("vigil_data_target_samples_scraped", "Samples in the last scrape", labels=tl)
        for t in r.targets:
            up.add_metric([t.job, t.instance], t.up)
            dur.add_metric([t.job, t.instance], t.scrape_duration_s)
            smp.add_metric([t.job, t.instance], t.samples_scraped)
        yield from (up, dur, smp)

        fl = ["family"]
        ratio = GaugeMetricFamily(
            "vigil_data_family_completeness_ratio", "Present / expected steps over the quality window", labels=fl
        )
        for name, fq in sorted(r.families.items()):
            ratio.add_metric([name], fq.completeness)
        yield ratio
        # Counts only for the families that have any: hundreds of all-zero series per scrape would
        # cost the collector more than they tell anyone.
        counts = {
            "missing_steps": ("Expected steps without a sample over the quality window", lambda f: f.missing_steps),
            "stale_series": ("Series whose last sample is older than two steps", lambda f: f.stale_series),
            "nan_samples": ("NaN samples over the quality window", lambda f: f.nan_samples),
            "counter_resets": ("Counter decreases over the quality window", lambda f: f.counter_resets),
        }
        for suffix, (doc, get) in counts.items():
            g = GaugeMetricFamily(f"vigil_data_family_{suffix}", doc, labels=fl)
            for name, fq in sorted(r.families.items()):
                if get(fq):
                    g.add_metric([name], float(get(fq)))
            yield g

        yield GaugeMetricFamily(
            "vigil_data_completeness_ratio", "Present / expected steps over all families", value=r.completeness
        )
        yield GaugeMetricFamily("vigil_data_series", "Series known to the collector", value=r.series)
        yield GaugeMetricFamily("vigil_data_stale_series", "Series older than two steps", value=r.stale_series)
        yield CounterMetricFamily(
            "vigil_data_stale_markers", "Stale markers seen in raw sample streams", value=float(r.stale_markers)
        )
        c = r.collection
        yield CounterMetricFamily(
            "vigil_data_samples_archived", "Samples written to the archive", value=float(c["samples_total"] or 0)
        )
        yield CounterMetricFamily(
            "vigil_data_collection_errors", "Failed collection cycles", value=float(c["errors_total"] or 0)
        )
        optional = {
            "vigil_data_collection_rate_samples_per_second": ("Archived samples per second", "samples_per_second"),
            "vigil_data_last_collection_timestamp_seconds": ("Unix time of the last successful cycle", "last_success"),
            "vigil_data_archived_until_timestamp_seconds": ("Newest archived step", "archived_until"),
            "vigil_data_collection_lag_seconds": ("Now minus the newest archived step", "lag_s"),
            "vigil_data_archive_bytes": ("Bytes on disk in the archive", "archive_bytes"),
        }
        for name, (doc, key) in optional.items():
            value = c.get(key)
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=float(value))
