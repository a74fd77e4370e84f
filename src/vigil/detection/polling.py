"""PromQL polling: the fallback feed when Prometheus cannot be configured to remote_write here.

Once per model step an instant query fetches the raw series the model needs at the step's grid
time (``lag_steps`` behind now, so Prometheus has ingested the scrape), and hands them to the
same :meth:`DetectionEngine.ingest` that remote_write uses: assembly, counters, scoring and
alarms are identical in both modes. Polling costs one query per step and adds up to one step of
latency, which is why remote_write is the default.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from vigil.detection.assembler import IngestCounts, catalog_kind
from vigil.detection.engine import DetectionEngine
from vigil.errors import VigilError
from vigil.ingest.remote_write import DecodedSeries
from vigil.prometheus import PromClient
from vigil.promql import promql_escape, regex_literal

log = logging.getLogger(__name__)


def raw_metric_names(signals: list[str]) -> list[str]:
    """The Prometheus metric names behind the model's signals (catalog inputs, or the names themselves)."""
    kind = catalog_kind(signals)
    if kind is None:
        return sorted(set(signals))
    from vigil.ingest.catalog import SIGNALS

    return sorted({m for s in SIGNALS[kind] if s.name in signals for i in s.inputs for m in i.metrics})


def selector(names: list[str]) -> str:
    alternation = "|".join(regex_literal(n) for n in names)
    return '{__name__=~"' + promql_escape(alternation) + '"}'


class PromQLPoller:
    def __init__(self, engine: DetectionEngine, prometheus_url: str, *, lag_steps: int = 1) -> None:
        self.engine = engine
        self.client = PromClient(prometheus_url, timeout_s=10.0)
        self.lag_steps = lag_steps
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _step_s(self) -> float:
        loaded = self.engine.loaded
        return DetectionEngine.model_step(loaded.model, self.engine.step_s) if loaded else self.engine.step_s

    def poll_once(self, now: float | None = None) -> IngestCounts:
        loaded = self.engine.loaded
        if loaded is None:
            return IngestCounts()
        step = self._step_s()
        now = time.time() if now is None else now
        at = (math.floor(now / step) - self.lag_steps) * step
        samples = self.client.query(selector(raw_metric_names(loaded.signals)), time=at)
        ts_ms = int(round(at * 1000))
        series = [DecodedSeries(s.labels.get("__name__", ""), s.labels, [ts_ms], [s.value]) for s in samples]
        return self.engine.ingest(series, received_at=time.time())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vigil-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            step = self._step_s()
            # Wake just after the next grid point, so each poll asks for a new step.
            self._stop.wait(step - (time.time() % step) + 0.01)
            if self._stop.is_set():
                break
            try:
                self.poll_once()
                self.last_error = ""
            except VigilError as exc:
                self.last_error = str(exc)
                self.engine.stats.counters.inc("poll_errors", type(exc).__name__)
                log.warning("PromQL poll failed: %s", exc)
            except Exception:
                log.exception("PromQL poll failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
