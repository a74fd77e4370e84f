"""``vigil quality``: a one-off data-quality report computed straight from Prometheus.

It does not need a running collector: the window is re-read with the same range queries the
collector uses and fed through the same :class:`~vigil.ingest.quality.QualityTracker`, so the
report and the ``vigil_data_*`` metrics of ``vigil collect --follow`` agree on what a gap is.
"""

from __future__ import annotations

import time

from vigil.ingest.archive import hour_windows
from vigil.ingest.collector import MetricsCollector
from vigil.ingest.quality import QualityReport, QualityTracker
from vigil.prometheus import PromClient

# How far before its window a one-off report looks for series that have since gone: the collector's
# default forget horizon, so both call the same series gone.
REMEMBER_S = 600.0


def quality_report(
    client: PromClient,
    *,
    match: str = '{__name__=~".+"}',
    window_s: float = 300.0,
    step_s: float = 1.0,
    lag_s: float = 5.0,
    chunk_s: float = 600.0,
    now_s: float | None = None,
) -> QualityReport:
    """Assess ``[now - lag - window, now - lag]`` of the series ``match`` selects, plus target health.

    Series seen in the :data:`REMEMBER_S` (or ``window``, if longer) before it and absent from all of
    it count as missing, as they would for a collector that had been following along.
    """
    now = time.time() if now_s is None else now_s
    step_ms = max(1, round(step_s * 1000))
    end_ms = (round((now - lag_s) * 1000) // step_ms) * step_ms
    start_ms = end_ms - (round(window_s * 1000) // step_ms - 1) * step_ms
    tracker = QualityTracker(window_s=window_s + step_s, forget_after_s=window_s)
    before_ms = start_ms - step_ms
    lookback_s = max(window_s, REMEMBER_S)
    tracker.remember(client.series([match], before_ms / 1000 - lookback_s, before_ms / 1000), before_ms)
    chunk_ms = max(step_ms, round(chunk_s * 1000))
    for lo, hi in hour_windows(start_ms, end_ms, step_ms, chunk_ms):
        tracker.observe_window(client.query_range(match, lo / 1000, hi / 1000, step_ms / 1000), lo, hi, step_ms)
    tracker.observe_targets(MetricsCollector.target_health_of(client))
    return tracker.report(now)
