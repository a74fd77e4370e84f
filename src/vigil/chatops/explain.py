"""Evidence -> explanation: what happened, likely cause, what to do now, how to confirm.

:class:`DeterministicExplainer` (the default, offline) matches the evidence against anomaly signatures
and fills in the matching runbook. :class:`vigil.chatops.llm.LLMExplainer` asks a language model and
falls back to this one whenever the answer cannot be trusted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vigil.chatops.evidence import Evidence, MetricFact
from vigil.chatops.runbooks import DEFAULT_DIR, Runbook, load_runbooks

# Per metric, the first matching signature wins: the order puts specific patterns before generic ones
# (``cpu_iowait`` is disk I/O, ``net_errors`` is the network, not the service's errors).
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (sig, re.compile(rx, re.IGNORECASE))
    for sig, rx in (
        ("target_down", r"(^|_)up$|scrape_|stale|target_down"),
        ("disk_full", r"filesystem_(avail|free|size|files)|disk_(used|free|full)|fs_(used|avail|free)|inode"),
        ("disk_io_saturation", r"disk_(io|read|write|busy|util)|io_time|iowait|pressure_io|disk_written|procs_blocked"),
        ("memory_pressure", r"mem|swap|oom|pgmajfault|page_fault|pressure_memory"),
        ("network_degradation", r"network|(^|_)net_|netstat|tcp|udp|retrans|_drop|_errs|conntrack|packet"),
        ("dependency_outage", r"upstream|dependency|backend|connect(ion)?_(refused|error)|dns"),
        ("latency_regression", r"latency|duration|response_time|p99|p95|in_flight"),
        ("error_spike", r"error|5xx|fail|exception"),
        ("cpu_saturation", r"cpu|(^|_)load\d*($|_)|procs_running|context_switch|pressure_cpu"),
    )
)
_RESOURCE = {"cpu_saturation", "memory_pressure", "disk_full", "disk_io_saturation", "network_degradation"}
MIN_MATCH = 0.25  # below this weight nothing is claimed: "unknown" is more honest than a guess
CORRELATED_WEIGHT = 0.2


def signature_of_metric(metric: str) -> str | None:
    for signature, pattern in _PATTERNS:
        if pattern.search(metric):
            return signature
    return None


def match_signature(evidence: Evidence) -> tuple[str, float, dict[str, float]]:
    """Best signature, its confidence (share of the total weight) and every signature's weight."""
    weights: dict[str, float] = {}

    def add(signature: str | None, weight: float) -> None:
        if signature:
            weights[signature] = weights.get(signature, 0.0) + weight

    n = max(len(evidence.top_metrics), 1)
    for fact in evidence.top_metrics:
        add(signature_of_metric(fact.metric), fact.share if fact.share > 0 else 1.0 / n)
    # Metrics that merely moved with the top one back a signature up, never outvote the attribution:
    # five disk counters swept along by a pinned CPU once named disk I/O for a CPU fault. Together
    # they weigh at most CORRELATED_WEIGHT.
    n_corr = max(len(evidence.correlated), 1)
    for corr in evidence.correlated:
        add(signature_of_metric(corr.metric), CORRELATED_WEIGHT * abs(corr.correlation) / n_corr)

    state = evidence.data_quality.get("state")
    if state == "target_down":
        add("target_down", 1.0)
    elif state == "stale":
        add("target_down", 0.5)

    # The watched service's latency and errors are measured for every entity's evidence, but they are a
    # symptom: when the entity's own attribution leads with a resource (CPU, memory, disk, network), that
    # resource is the cause and the service merely suffers it. In a quick validation run a CPU fault's
    # host alert led with cpu_busy (share 0.34) while the service's p99 rose 25-fold, and a memory fault's
    # host alert came while the service's errors rose: their messages named latency regression and a
    # dependency outage.
    lead = max(evidence.top_metrics, key=lambda f: f.share, default=None)
    resources = sum(w for s, w in weights.items() if s in _RESOURCE)
    if lead is None or signature_of_metric(lead.metric) not in _RESOURCE:
        svc = evidence.service
        errors_up = _rose(svc.error_ratio, svc.error_ratio_baseline, factor=3.0, floor=0.05)
        if errors_up:
            add("error_spike", 0.3)
        if _rose(svc.latency_p99_s, svc.latency_p99_baseline_s, factor=2.0, floor=0.0):
            add("latency_regression", 0.3)
        if errors_up and resources < 0.3 and state in ("ok", None):
            # Errors with a healthy host point past the service, at what it calls.
            add("dependency_outage", 0.4)

    if not weights:
        return "unknown", 0.0, {}
    best = max(weights, key=lambda s: weights[s])
    total = sum(weights.values())
    if weights[best] < MIN_MATCH:
        return "unknown", 0.0, weights
    return best, weights[best] / total, weights


def _rose(now: float | None, before: float | None, *, factor: float, floor: float) -> bool:
    if now is None or not math.isfinite(now) or now <= floor:
        return False
    return before is None or not math.isfinite(before) or now > factor * max(before, 1e-12)


@dataclass(frozen=True)
class Explanation:
    entity: str
    signature: str
    explainer: str  # "deterministic" or "llm": which one produced ``text``
    text: str
    evidence: Evidence
    confidence: float = 0.0
    runbook: str = ""
    llm: dict[str, Any] = field(default_factory=dict)  # the LLM attempt: used, reason, model, latency

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "signature": self.signature,
            "explainer": self.explainer,
            "text": self.text,
            "confidence": round(self.confidence, 3),
            "runbook": self.runbook,
            "llm": self.llm,
            "evidence": self.evidence.to_dict(),
        }


class Explainer(Protocol):
    def explain(self, evidence: Evidence) -> Explanation: ...


def _num(x: float | None, unit: str = "") -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3g}{unit}"


_BINARY = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def _n(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def quantity(x: float, unit: str) -> str:
    """A value in its unit as an operator reads it: ``0.64 s`` -> ``640 ms``, a ratio as percent.

    >>> quantity(0.64, "seconds"), quantity(0.131, "ratio"), quantity(3 * 2**20, "bytes/s"), quantity(5000, "1/s")
    ('640 ms', '13.1 %', '3 MiB/s', '5,000/s')
    """
    if unit == "seconds":
        return f"{_n(x * 1000)} ms" if abs(x) < 1 else f"{_n(x)} s"
    if unit == "ratio":
        return f"{_n(x * 100)} %"
    if unit in ("bytes", "bytes/s"):
        suffix = "/s" if unit == "bytes/s" else ""
        for name, size in _BINARY:
            if abs(x) >= size:
                return f"{_n(x / size)} {name}{suffix}"
        return f"{_n(x)} B{suffix}"
    if unit == "1/s":
        return f"{_n(x)}/s"
    return f"{_n(x)} {unit}" if unit else _n(x)


def _deviation(f: MetricFact) -> str | None:
    """``latency_p99 +640 ms over its usual 38 ms``: the change in the signal's own units."""
    if f.value is None or f.baseline is None or not (math.isfinite(f.value) and math.isfinite(f.baseline)):
        return None
    delta = f.value - f.baseline
    sign, side = ("+", "over") if delta >= 0 else ("-", "under")
    return f"{f.metric} {sign}{quantity(abs(delta), f.unit)} {side} its usual {quantity(f.baseline, f.unit)}"


def _fact_line(f: MetricFact) -> str:
    if f.unit:
        line = _deviation(f) or f"{f.metric} is {_num(f.value)}"
    else:
        line = f"{f.metric} is {_num(f.value)} against a baseline of {_num(f.baseline)}"
    if f.share > 0:
        line += f" ({f.share:.0%} of the anomaly)"
    return line


def what_happened(evidence: Evidence) -> str:
    parts = [f"Vigil scored {evidence.entity} at {_num(evidence.score)} (threshold {_num(evidence.threshold)})."]
    if evidence.top_metrics:
        parts.append("Top metrics: " + "; ".join(_fact_line(f) for f in evidence.top_metrics[:3]) + ".")
    if evidence.correlated:
        parts.append(
            "Moving with it: "
            + ", ".join(f"{c.metric} (r={c.correlation:+.2f})" for c in evidence.correlated[:3])
            + "."
        )
    svc = evidence.service
    if svc.latency_p99_s is not None or svc.error_ratio is not None:
        parts.append(
            f"Service: p99 latency {_num(svc.latency_p99_s, ' s')} (baseline {_num(svc.latency_p99_baseline_s, ' s')}),"
            f" error ratio {_num(svc.error_ratio)} (baseline {_num(svc.error_ratio_baseline)})."
        )
    state = evidence.data_quality.get("state")
    if state:
        parts.append(f"Data quality: {state}.")
    if evidence.model_changes.get("changed_recently"):
        versions = ", ".join(evidence.model_changes.get("versions_last_6h", []))
        parts.append(f"The model changed in the last 6 hours (versions {versions}).")
    return " ".join(parts)


class DeterministicExplainer:
    """Signature matching plus runbook text; needs nothing but the evidence and ``docs/runbooks``.

    Examples
    --------
    >>> from vigil.chatops.evidence import Evidence, MetricFact
    >>> ev = Evidence("web-1:9100", 0.0, 0.93, 0.8, True, top_metrics=(MetricFact("cpu_busy", 0.97, 0.2, 0.7),))
    >>> DeterministicExplainer().explain(ev).signature
    'cpu_saturation'
    """

    def __init__(self, runbooks_dir: Path | str | None = None) -> None:
        self.runbooks: dict[str, Runbook] = load_runbooks(Path(runbooks_dir) if runbooks_dir else DEFAULT_DIR)

    def explain(self, evidence: Evidence) -> Explanation:
        signature, confidence, _ = match_signature(evidence)
        book = self.runbooks[signature]
        lines = [
            f"{book.title} on {evidence.entity} [signature: {signature}, confidence {confidence:.0%}]",
            "",
            f"What happened: {what_happened(evidence)}",
            f"Likely cause: {book.meaning.split('. ')[0].rstrip('.')}. Most likely: "
            + "; or ".join(c[:1].lower() + c[1:].rstrip(".") for c in book.causes[:2])
            + ".",
            "What to do now:",
            *(f"  {i}. {a}" for i, a in enumerate(book.actions, 1)),
            "How to confirm:",
            *(f"  - {c}" for c in book.confirm),
        ]
        if evidence.queries:
            lines.append("Queries:")
            lines += [f"  - {name}: {q}" for name, q in list(evidence.queries.items())[:6]]
        if evidence.problems:
            lines.append(f"(Evidence incomplete: {len(evidence.problems)} question(s) to Prometheus failed.)")
        return Explanation(
            entity=evidence.entity,
            signature=signature,
            explainer="deterministic",
            text="\n".join(lines),
            evidence=evidence,
            confidence=confidence,
            runbook=str(book.path),
        )
