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

from vigil.chatops.evidence import DependencyFacts, Evidence, MetricFact
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
# What the service's calls to its dependencies show is a cause, where its own latency and errors are
# symptoms: it outweighs the attribution (whose shares sum to at most 1).
CAUSE_WEIGHT = 2.0
# A dependency's calls are slow at 2.5 times their usual mean duration and 50 ms more (100 ms when
# nothing usual is known), and failing above 0.05 failures a second and 3 times their usual rate.
SLOW_FACTOR, SLOW_MARGIN_S, SLOW_UNKNOWN_S = 2.5, 0.05, 0.1
FAILING_MIN_PER_S, FAILING_FACTOR = 0.05, 3.0


def signature_of_metric(metric: str) -> str | None:
    for signature, pattern in _PATTERNS:
        if pattern.search(metric):
            return signature
    return None


def _slow(d: DependencyFacts) -> bool:
    if d.latency_s is None:
        return False
    if d.latency_baseline_s is None:
        return d.latency_s >= SLOW_UNKNOWN_S
    return d.latency_s >= max(SLOW_FACTOR * d.latency_baseline_s, d.latency_baseline_s + SLOW_MARGIN_S)


def _failing(d: DependencyFacts, *, timeouts: bool) -> bool:
    rate = sum(r for error, r in d.failures_per_s.items() if ("timeout" in error.lower()) == timeouts)
    return rate > FAILING_MIN_PER_S and rate > FAILING_FACTOR * (d.failures_baseline_per_s or 0.0)


def dependency_verdict(evidence: Evidence) -> tuple[str, DependencyFacts] | None:
    """What the watched service's calls to its dependencies point at, and which dependency shows it.

    A dependency whose calls fail other than by timing out (refused, ``database is locked``) is an
    outage. Calls over a network link that are slow or time out while the local ones are not point
    at the link: loss and delay slow exactly the calls that cross it. Local calls that are slow
    while the remote ones are not are the service's own latency regression (its database under
    contention). Both slow at once is what a starved host does to everything: no verdict.

    >>> from vigil.chatops.evidence import DependencyFacts as D
    >>> ev = Evidence("demo", 0.0, 0.9, 0.8, True, dependencies=(
    ...     D("inventory", "network", 0.81, 0.004, {"ReadTimeout": 0.6}), D("database", "local", 0.001, 0.001)))
    >>> [(sig, d.name) for sig, d in [dependency_verdict(ev)]]
    [('network_degradation', 'inventory')]
    """
    deps = evidence.dependencies
    for d in deps:
        if _failing(d, timeouts=False):
            return "dependency_outage", d
    remote = [d for d in deps if d.kind == "network" and (_slow(d) or _failing(d, timeouts=True))]
    local = [d for d in deps if d.kind == "local" and _slow(d)]
    if remote and not local:
        return "network_degradation", remote[0]
    if local and not remote:
        return "latency_regression", local[0]
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

    # A capacity level that stepped past all it did in the minutes before caused what moved with it:
    # stress-ng filling memory also pins the CPU, and the alert's attribution led with cpu_busy.
    for level in evidence.levels:
        if level.changed:
            add(signature_of_metric(level.metric), CAUSE_WEIGHT)

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
        verdict = dependency_verdict(evidence)
        if verdict is not None:
            add(verdict[0], CAUSE_WEIGHT)
        measured = any(d.latency_s is not None for d in evidence.dependencies)
        if errors_up and resources < 0.3 and state in ("ok", None) and not measured:
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
    at: str = ""  # the dependency the cause lies at, when the evidence names one (else: the entity itself)

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "signature": self.signature,
            "explainer": self.explainer,
            "text": self.text,
            "confidence": round(self.confidence, 3),
            "runbook": self.runbook,
            "llm": self.llm,
            "at": self.at,
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


def _dependency_line(d: DependencyFacts) -> str:
    """``inventory (network): calls 812 ms (usual 4 ms), failing 0.6/s (ReadTimeout 0.6/s)``."""
    line = f"{d.name} ({d.kind}): calls " + (quantity(d.latency_s, "seconds") if d.latency_s is not None else "n/a")
    if d.latency_baseline_s is not None:
        line += f" (usual {quantity(d.latency_baseline_s, 'seconds')})"
    if d.failures_per_s:
        by_error = ", ".join(f"{e} {quantity(r, '1/s')}" for e, r in sorted(d.failures_per_s.items()))
        line += f", failing {quantity(sum(d.failures_per_s.values()), '1/s')} ({by_error})"
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
    changed = [lvl for lvl in evidence.levels if lvl.changed]
    if changed:
        steps = (
            f"{lvl.metric} {_num(lvl.now)}, {'at most' if lvl.direction > 0 else 'at least'} {_num(lvl.before)}"
            " in the minutes before"
            for lvl in changed
        )
        parts.append("Changed: " + "; ".join(steps) + ".")
    if any(d.latency_s is not None or d.failures_per_s for d in evidence.dependencies):
        parts.append("Dependencies: " + "; ".join(_dependency_line(d) for d in evidence.dependencies) + ".")
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
    >>> from vigil.chatops.evidence import DependencyFacts, Evidence, MetricFact
    >>> ev = Evidence("web-1:9100", 0.0, 0.93, 0.8, True, top_metrics=(MetricFact("cpu_busy", 0.97, 0.2, 0.7),))
    >>> DeterministicExplainer().explain(ev).signature
    'cpu_saturation'
    """

    def __init__(self, runbooks_dir: Path | str | None = None) -> None:
        self.runbooks: dict[str, Runbook] = load_runbooks(Path(runbooks_dir) if runbooks_dir else DEFAULT_DIR)

    def explain(self, evidence: Evidence) -> Explanation:
        signature, confidence, _ = match_signature(evidence)
        book = self.runbooks[signature]
        verdict = dependency_verdict(evidence)
        where, at = evidence.entity, ""
        if verdict is not None and verdict[0] == signature and signature != "latency_regression":
            at = verdict[1].name
            where += f", at its dependency {at} ({verdict[1].kind})"
        lines = [
            f"{book.title} on {where} [signature: {signature}, confidence {confidence:.0%}]",
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
            at=at,
        )
