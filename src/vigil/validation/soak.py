"""``vigil soak``: the running stack plus a replay of N times its own series, sent to ``vigil serve``.

The stack's last few minutes are read back from its Prometheus (every series Prometheus
remote_writes) and sent again to ``vigil serve``'s remote_write endpoint as ``copies`` new sets of
entities, at the stack's scrape interval, stamped now, for ``duration_s``. So the load is real
series, ``copies + 1`` times as many of them, while Prometheus keeps writing the originals. Each
copy renames ``instance``, ``job`` and ``service`` (the labels entities are named by), so copies
are new hosts and services; each gets a model of its own in the registry (a version pointing at its
original's champion bundle, in shadow mode: scored and exported, never paging), so serving does
for them what it does for a fleet, and the models are deleted when the soak ends. Counters keep
rising across the loop (the replay adds what the window rose by at each turn), so rates do not see
a reset at every wrap.

Measured: the latency of every request the replay sends (as Prometheus would see it), failures by
status, resident memory of ``vigil serve`` (master and workers) every few seconds, how far the
stack's own entities' newest scored step falls behind the clock, and how many copies are scored.
Memory is judged after a warm-up (the copies' streams, buffers and models fill during it): the
growth after it is what a leak would show.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests

from vigil.config import Settings
from vigil.errors import BadRequest, NotFound, UpstreamUnavailable
from vigil.ingest.remote_write import PROMETHEUS_HEADERS, WriteRequest, snappy_block
from vigil.procfs import rss_mb
from vigil.prometheus import PromClient
from vigil.registry import ModelRegistry
from vigil.stack import control
from vigil.tokens import read_headers

ENTITY_LABELS = ("instance", "job", "service")
COPY_PREFIX = "soak"
TAG_SOAK = "vigil.soak"  # on the registered models of the copies, so an interrupted soak's are found


@dataclass(frozen=True)
class SoakConfig:
    copies: int = 10
    duration_s: float = 180.0
    warmup_s: float = 60.0  # memory at the end of this is the reference growth is measured against
    baseline_s: float = 15.0  # measured before the replay starts: the stack's own lag and memory unloaded
    window_s: float = 120.0  # the recorded stretch of the stack's series, replayed in a loop
    max_samples_per_send: int = 2000  # Prometheus' default, which the stack's Prometheus uses
    senders: int = 4  # the stack's Prometheus sends on up to 4 shards
    sample_every_s: float = 5.0

    def __post_init__(self) -> None:
        if self.copies < 1 or self.duration_s <= 0 or not 0 <= self.warmup_s < self.duration_s or self.window_s < 10:
            raise BadRequest("soak needs copies >= 1, 0 <= warmup < duration and a window of at least 10 s")


@dataclass
class Replay:
    """The recorded series as ``values[series, step]`` with their labels, and how much each counter
    rises per turn of the loop (0 for gauges)."""

    labels: list[dict[str, str]]
    values: np.ndarray
    rise: np.ndarray

    @property
    def steps(self) -> int:
        return self.values.shape[1]

    def at(self, step: int) -> np.ndarray:
        turn, i = divmod(step, self.steps)
        return self.values[:, i] + turn * self.rise


def record(prom: PromClient, window_s: float, step_s: float, now: float | None = None) -> Replay:
    """Every series of the stack's Prometheus over the last ``window_s``, on a ``step_s`` grid."""
    end = time.time() if now is None else now
    series = prom.query_range('{__name__=~".+"}', end - window_s, end, step_s, chunk_s=window_s)
    grid = np.arange(end - window_s, end + step_s / 2, step_s)
    labels, rows = [], []
    for s in series:
        idx = np.searchsorted(grid, s.timestamps - step_s / 2)
        row = np.full(len(grid), np.nan)
        ok = idx < len(grid)
        row[idx[ok]] = s.values[ok]
        row = _fill(row)
        if np.isnan(row).all():
            continue
        labels.append(s.labels)
        rows.append(row)
    if not rows:
        raise UpstreamUnavailable(f"Prometheus at {prom.base_url} has no series in the last {window_s:.0f} s")
    values = np.vstack(rows)
    with np.errstate(invalid="ignore"):
        monotone = np.all(np.diff(values, axis=1) >= 0, axis=1)
    step_rise = (values[:, -1] - values[:, 0]) / max(values.shape[1] - 1, 1)
    rise = np.where(monotone & (values[:, -1] > values[:, 0]), values[:, -1] - values[:, 0] + step_rise, 0.0)
    return Replay(labels, values, rise)


def _fill(row: np.ndarray) -> np.ndarray:
    """Carry the last value forward (and the first backward) over holes in a recorded series."""
    ok = ~np.isnan(row)
    if not ok.any():
        return row
    idx = np.where(ok, np.arange(len(row)), 0)
    np.maximum.accumulate(idx, out=idx)
    filled = row[idx]
    filled[: np.argmax(ok)] = row[np.argmax(ok)]
    return filled


def copy_labels(labels: dict[str, str], copy: int) -> dict[str, str]:
    out = dict(labels)
    for name in ENTITY_LABELS:
        if name in out:
            out[name] = f"{COPY_PREFIX}{copy}-{out[name]}"
    return out


class Batches:
    """Every copy's series as pre-built WriteRequests of at most ``per_request`` series; each step
    only rewrites the one sample of every series, as Prometheus would send a fresh scrape."""

    def __init__(self, replay: Replay, copies: int, per_request: int) -> None:
        self.replay = replay
        self.requests: list[Any] = []
        self.rows: list[np.ndarray] = []  # the replay row of each series in each request
        pairs = [(copy_labels(labels, c), row) for c in range(copies) for row, labels in enumerate(replay.labels)]
        for start in range(0, len(pairs), per_request):
            msg = WriteRequest()
            rows = []
            for labels, row in pairs[start : start + per_request]:
                ts = msg.timeseries.add()
                for name in sorted(labels):
                    ts.labels.add(name=name, value=labels[name])
                ts.samples.add()
                rows.append(row)
            self.requests.append(msg)
            self.rows.append(np.asarray(rows))

    @property
    def series(self) -> int:
        return sum(len(r) for r in self.rows)

    def bodies(self, step: int, ts_ms: int) -> list[bytes]:
        values = self.replay.at(step)
        out = []
        for msg, rows in zip(self.requests, self.rows, strict=True):
            for ts, value in zip(msg.timeseries, values[rows].tolist(), strict=True):
                sample = ts.samples[0]
                sample.timestamp = ts_ms
                sample.value = value
            out.append(snappy_block(msg.SerializeToString()))
        return out


@dataclass
class SoakReport:
    config: SoakConfig
    series_per_copy: int
    series_sent: int
    steps: int = 0
    late_steps: int = 0  # steps whose requests took longer than the scrape interval to send
    latencies_s: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    step_latency: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, slowest request)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MB)
    lag: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, worst own-entity lag)
    copies_scored: int = 0
    own_entities: int = 0
    copy_models: int = 0
    elapsed_s: float = 0.0
    # The server's own p99 over every remote_write request, before (Prometheus' alone) and during.
    server_p99_before_s: float | None = None
    server_p99_during_s: float | None = None
    step_s: float = 1.0

    def rss_at(self, t: float) -> float:
        before = [mb for when, mb in self.rss if when <= t]
        return before[-1] if before else self.rss[0][1]

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_s) * 1000 if self.latencies_s else np.asarray([np.nan])
        warm = self.rss_at(self.config.warmup_s)
        after = [mb for when, mb in self.rss if when >= self.config.warmup_s] or [warm]
        own_lag = [lag for when, lag in self.lag if when >= 0]
        lag_before = [lag for when, lag in self.lag if when < 0]
        rss_before = [mb for when, mb in self.rss if when < 0]
        elapsed = self.elapsed_s
        return {
            "copies": self.config.copies,
            "duration_s": self.config.duration_s,
            "warmup_s": self.config.warmup_s,
            "series_per_copy": self.series_per_copy,
            "series_sent": self.series_sent,
            "steps": self.steps,
            "late_steps": self.late_steps,
            "samples_per_s": round(self.series_sent * self.steps / elapsed, 1) if elapsed else 0.0,
            "requests": len(self.latencies_s) + sum(self.failures.values()),
            "failures": dict(self.failures),
            "latency_p50_ms": round(float(np.percentile(lat, 50)), 2),
            "latency_p99_ms": round(float(np.percentile(lat, 99)), 2),
            "latency_max_ms": round(float(lat.max()), 2),
            "server_p99_before_ms": _ms(self.server_p99_before_s),
            "server_p99_during_ms": _ms(self.server_p99_during_s),
            "rss_before_mb": round(rss_before[-1], 1) if rss_before else None,
            "rss_at_warmup_mb": round(warm, 1),
            "rss_max_after_warmup_mb": round(max(after), 1),
            "rss_growth_after_warmup_pct": round(100 * (max(after) - warm) / warm, 2) if warm else None,
            "own_entities": self.own_entities,
            "own_entity_lag_before_max_s": round(max(lag_before), 2) if lag_before else None,
            "own_entity_lag_max_s": round(max(own_lag), 2) if own_lag else None,
            "copy_models": self.copy_models,
            "copies_scored": self.copies_scored,
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def register_fleet(registry: ModelRegistry, copies: int) -> list[str]:
    """A shadow model for each copy of each entity that has a champion; leftovers of an interrupted
    soak are removed first."""
    remove_fleet(registry)
    made = []
    for name in registry.entities():
        try:
            entity = registry.get(name).entity
        except NotFound:  # no champion: nothing serves it, so its copies would not be scored either
            continue
        for copy in range(copies):
            made.append(
                registry.copy_champion(name, f"{COPY_PREFIX}{copy}-{entity}", mode="shadow", tags={TAG_SOAK: "true"})
            )
    return made


def remove_fleet(registry: ModelRegistry) -> None:
    for name in registry.entities():
        if registry.client.get_registered_model(name).tags.get(TAG_SOAK) == "true":
            registry.delete(name)


def run_soak(
    settings: Settings, config: SoakConfig, *, progress: Callable[[str], None] = lambda _msg: None
) -> SoakReport:
    """Replay ``config.copies`` copies of the stack's series into its ``vigil serve`` and measure."""
    vigil_pid = control.component_pid(settings, "vigil")
    if vigil_pid is None:
        raise UpstreamUnavailable("the stack's vigil serve is not running", hint="vigil up; vigil status")
    registry = ModelRegistry(settings)
    fleet = register_fleet(registry, config.copies)
    try:
        progress(f"{len(fleet)} copy models registered; waiting for vigil serve to serve them")
        _wait_served(settings, fleet, timeout_s=max(120.0, 5 * len(fleet)))
        return _replay(settings, config, vigil_pid, len(fleet), progress)
    finally:
        remove_fleet(registry)


def _wait_served(settings: Settings, names: list[str], timeout_s: float) -> None:
    """Until ``vigil serve`` serves every one of ``names``: loading models is set-up, not the load measured."""
    deadline = time.monotonic() + timeout_s
    missing = set(names)
    while time.monotonic() < deadline:
        try:
            resp = requests.get(f"{settings.url('vigil')}/v1/models", headers=read_headers(settings), timeout=10)
            missing = set(names) - set(resp.json().get("models", {}))
        except (requests.RequestException, ValueError):
            pass
        if not missing:
            return
        time.sleep(2)
    raise UpstreamUnavailable(
        f"vigil serve did not serve {len(missing)} of the {len(names)} copy models within {timeout_s:.0f} s",
        hint="see the vigil component's log",
    )


def _replay(
    settings: Settings, config: SoakConfig, vigil_pid: int, models: int, progress: Callable[[str], None]
) -> SoakReport:
    step_s = settings.scrape_interval_s
    replay = record(PromClient(settings.url("prometheus")), config.window_s, step_s)
    batches = Batches(replay, config.copies, config.max_samples_per_send)
    report = SoakReport(config, len(replay.labels), batches.series, step_s=step_s)
    report.copy_models = models
    progress(
        f"{models} copy models served; {len(replay.labels)} series recorded over {config.window_s:.0f} s; "
        f"sending {batches.series} per {step_s:g} s step in {len(batches.requests)} requests "
        f"for {config.duration_s:.0f} s"
    )
    url = f"{settings.url('vigil')}/api/v1/write"
    local = threading.local()
    lock = threading.Lock()

    def send(body: bytes) -> float:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        started = time.perf_counter()
        try:
            status = session.post(url, data=body, headers=PROMETHEUS_HEADERS, timeout=30).status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        took = time.perf_counter() - started
        with lock:
            if status in (200, 204):
                report.latencies_s.append(took)
            else:
                report.failures[str(status)] = report.failures.get(str(status), 0) + 1
        return took

    stop = threading.Event()
    t0 = time.monotonic() + config.baseline_s
    watcher = threading.Thread(target=_watch, args=(settings, vigil_pid, report, t0, config, stop), daemon=True)
    watcher.start()
    hist_start = server_latency(settings)
    time.sleep(config.baseline_s)
    hist_replay = server_latency(settings)
    try:
        with ThreadPoolExecutor(config.senders, thread_name_prefix="soak-send") as pool:
            next_report = config.sample_every_s * 6
            while (elapsed := time.monotonic() - t0) < config.duration_s:
                tick = t0 + report.steps * step_s
                bodies = batches.bodies(report.steps, int(time.time() * 1000))
                slowest = max(pool.map(send, bodies))
                report.step_latency.append((elapsed, slowest))
                report.steps += 1
                done = time.monotonic()
                if done - tick > step_s:
                    report.late_steps += 1
                if elapsed >= next_report:
                    s = report.summary()
                    progress(
                        f"{elapsed:4.0f} s: p99 {s['latency_p99_ms']} ms, RSS {s['rss_max_after_warmup_mb']} MB, "
                        f"own lag max {s['own_entity_lag_max_s']} s, {s['copies_scored']} copies scored"
                    )
                    next_report += config.sample_every_s * 6
                # Keep the grid: a late step is followed at once, not after a full interval.
                time.sleep(max(0.0, t0 + report.steps * step_s - time.monotonic()))
    finally:
        stop.set()
        watcher.join(15)
    report.elapsed_s = time.monotonic() - t0
    hist_end = server_latency(settings)
    report.server_p99_before_s = histogram_quantile(0.99, hist_start, hist_replay)
    report.server_p99_during_s = histogram_quantile(0.99, hist_replay, hist_end)
    _sample(settings, vigil_pid, report, report.elapsed_s)
    return report


def _watch(
    settings: Settings, pid: int, report: SoakReport, t0: float, config: SoakConfig, stop: threading.Event
) -> None:
    while not stop.is_set():
        _sample(settings, pid, report, time.monotonic() - t0)
        stop.wait(config.sample_every_s)


def server_latency(settings: Settings) -> dict[float, float]:
    """``vigil_remote_write_request_seconds`` as ``vigil serve`` counts it: cumulative count per bucket
    bound, for every request it answered (Prometheus' as well as the replay's)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{settings.url('vigil')}/metrics", headers=read_headers(settings), timeout=10).text
    return {
        float(sample.labels["le"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "vigil_remote_write_request_seconds_bucket"
    }


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    """PromQL's ``histogram_quantile`` over the requests counted between two readings, in seconds
    (linear within the bucket; the highest finite bound when it falls in the +Inf bucket)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return lower


def _sample(settings: Settings, pid: int, report: SoakReport, when: float) -> None:
    report.rss.append((when, rss_mb(pid)))
    try:
        views = requests.get(f"{settings.url('vigil')}/v1/entities", headers=read_headers(settings), timeout=10).json()[
            "entities"
        ]
    except (requests.RequestException, ValueError, KeyError):
        return
    now = time.time()
    own = [v for v in views if not str(v["entity"]).startswith(COPY_PREFIX)]
    report.own_entities = len(own)
    report.copies_scored = len(views) - len(own)
    if own:
        report.lag.append((when, max(now - float(v["timestamp"]) for v in own)))


def plot(report: SoakReport, path: Path) -> Path:
    """Memory, the slowest request of each step and the stack's own entity lag over the soak, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    t, mb = zip(*report.rss, strict=True) if report.rss else ((), ())
    axes[0].plot(t, mb, color="tab:blue")
    axes[0].axvline(report.config.warmup_s, color="grey", linestyle="--", label="end of warm-up")
    warm = report.rss_at(report.config.warmup_s) if report.rss else 0.0
    axes[0].axhline(warm * 1.1, color="tab:red", linestyle=":", label="+10 % of warm-up memory")
    axes[0].set_ylabel("vigil serve RSS (MiB)")
    axes[0].legend(loc="lower right")
    if report.step_latency:
        ts, lat = zip(*report.step_latency, strict=True)
        axes[1].plot(ts, np.asarray(lat) * 1000, color="tab:orange", linewidth=0.8)
    axes[1].set_ylabel("slowest request\nper step (ms)")
    if report.lag:
        tl, lag = zip(*report.lag, strict=True)
        axes[2].plot(tl, lag, color="tab:green")
    axes[2].set_ylabel("own entities'\nscore lag (s)")
    axes[2].set_xlabel("seconds since the replay started")
    s = report.summary()
    fig.suptitle(
        f"soak: {s['copies']} copies, {s['series_sent']} series/step, p99 {s['latency_p99_ms']} ms, "
        f"memory after warm-up {s['rss_growth_after_warmup_pct']:+.1f} %"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
