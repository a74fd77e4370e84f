"""Vigil's own service level indicators over one window, from Prometheus: what `vigil slo` prints.

The definitions are docs/slo.md's; deploy/prometheus/rules/slo.yml records the same ratios over
fixed windows for its burn-rate alerts. Here each is one instant query at the window's end, so it
also reads a Prometheus that never loaded those rules (an older run's TSDB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vigil.prometheus import PromClient


@dataclass(frozen=True)
class Objective:
    name: str
    target: float  # the share of good events promised
    good: str  # what counts as a good event
    error_ratio: str  # PromQL over ``{w}``, the window
    events: str  # PromQL: how many events the window held


OBJECTIVES = (
    Objective(
        "ingest availability", 0.999, "remote_write request answered 2xx",
        # No refused request means no series with that code at all: count it as none.
        '(sum(increase(vigil_remote_write_requests_total{{code!~"2.."}}[{w}])) or vector(0))'
        " / sum(increase(vigil_remote_write_requests_total[{w}]))",
        "sum(increase(vigil_remote_write_requests_total[{w}]))",
    ),
    Objective(
        "scoring freshness", 0.99, "entity's newest score at most 10 s old, sampled every {step}",
        "avg_over_time((sum((time() - vigil_last_scored_timestamp_seconds) > bool 10)"
        " / count(vigil_last_scored_timestamp_seconds))[{w}:{step}])",
        "sum(count_over_time(vigil_last_scored_timestamp_seconds[{w}]))",
    ),
    Objective(
        "alert delivery latency", 0.99, "alert accepted by Alertmanager within 5 s of its step scored",
        '1 - sum(increase(vigil_score_to_alert_seconds_bucket{{le="5.0"}}[{w}]))'
        " / sum(increase(vigil_score_to_alert_seconds_count[{w}]))",
        "sum(increase(vigil_score_to_alert_seconds_count[{w}]))",
    ),
    Objective(
        "chat delivery", 0.99, "chat message accepted by every target",
        '(sum(increase(vigil_chat_messages_total{{outcome="failed"}}[{w}])) or vector(0))'
        ' / sum(increase(vigil_chat_messages_total{{outcome=~"delivered|failed"}}[{w}]))',
        'sum(increase(vigil_chat_messages_total{{outcome=~"delivered|failed"}}[{w}]))',
    ),
)  # fmt: skip


def measure(prom: PromClient, window_s: float, at: float, step_s: float = 15.0) -> list[dict[str, Any]]:
    """Each objective's measured share of good events over ``[at - window_s, at]`` (None: no event)."""
    w, step = f"{int(window_s)}s", f"{int(max(step_s, 1))}s"
    out = []
    for o in OBJECTIVES:
        errors = prom.scalar(o.error_ratio.format(w=w, step=step), time=at)
        events = prom.scalar(o.events.format(w=w, step=step), time=at) or 0.0  # no series: nothing counted
        good = None if errors is None else 1.0 - errors
        out.append({
            "objective": o.name, "target": o.target, "good_event": o.good.format(step=step),
            "good_share": good, "events": events, "met": None if good is None else good >= o.target,
            "budget_spent": None if errors is None else errors / (1.0 - o.target),
        })  # fmt: skip
    return out
