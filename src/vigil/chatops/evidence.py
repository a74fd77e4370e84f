"""Gather the facts an SRE would look at for one anomaly, from the Prometheus HTTP API.

Every part is best effort: when Prometheus cannot answer one question the evidence says so in
``problems`` and the rest still arrives, because an explanation built from the anomaly alone beats
none during an incident (when Prometheus itself may be the thing that is struggling).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from vigil import promql
from vigil.errors import BadRequest, NotFound, UpstreamUnavailable
from vigil.events import Anomaly, Contribution
from vigil.jsonsafe import json_safe
from vigil.prometheus import PromClient, RangeSeries
from vigil.promql import check_label_name, check_metric_name

_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass(frozen=True)
class MetricFact:
    metric: str
    value: float | None  # what the model saw at the anomalous sample
    baseline: float | None  # what the model learned as normal (or the last hour's mean)
    share: float  # of the anomaly, attributed to this metric
    current: float | None = None  # now, from Prometheus
    query: str | None = None
    link: str | None = None
    unit: str = ""  # the signal's unit when the model's catalogue knows it (ratio, seconds, bytes/s, ...)


@dataclass(frozen=True)
class CorrelatedMetric:
    metric: str
    correlation: float  # Pearson r with the top metric over the evidence window
    query: str


@dataclass(frozen=True)
class ServiceFacts:
    latency_p99_s: float | None = None
    latency_p99_baseline_s: float | None = None
    error_ratio: float | None = None
    error_ratio_baseline: float | None = None


@dataclass(frozen=True)
class DependencyFacts:
    """The watched service's calls to one dependency, as its own client metrics measure them."""

    name: str
    kind: str  # "network": reached over a link; "local": on the service's machine (a database file)
    latency_s: float | None = None  # mean call duration over the last DEPENDENCY_WINDOW_S
    latency_baseline_s: float | None = None
    failures_per_s: dict[str, float] = field(default_factory=dict)  # by error type, now
    failures_baseline_per_s: float | None = None  # all error types


@dataclass(frozen=True)
class LevelChange:
    """A capacity level (memory used, free disk space) now and at its most extreme in the minutes just
    before: such a level does not burst, so a step past everything it did then is what changed,
    whatever else moved with it."""

    metric: str
    now: float
    before: float  # the highest (for a level whose fall hurts: the lowest) in the minutes before
    minimum: float  # the signal's practical minimum, in its own units
    direction: int  # 1: rising hurts, -1: falling hurts

    @property
    def changed(self) -> bool:
        return self.direction * (self.now - self.before) > self.minimum


@dataclass(frozen=True)
class ServiceDependencies:
    """What one service calls (name -> ``"network"`` or ``"local"``) and the client metrics that
    measure the calls: a histogram and a failures counter with an ``error`` label, both labelled
    ``dependency``."""

    depends_on: Mapping[str, str]
    duration_metric: str
    failures_metric: str

    def __post_init__(self) -> None:
        check_metric_name(self.duration_metric)
        check_metric_name(self.failures_metric)

    def latency_query(self, dependency: str) -> str:
        """Mean duration of the calls to ``dependency`` over the last DEPENDENCY_WINDOW_S."""
        of, calls = promql.matchers({"dependency": dependency}), self.duration_metric
        window = f"{DEPENDENCY_WINDOW_S}s"
        return f"sum(rate({calls}_sum{{{of}}}[{window}])) / sum(rate({calls}_count{{{of}}}[{window}]))"

    def failures_query(self, dependency: str, by: str = "") -> str:
        """Failed calls to ``dependency`` a second over the last DEPENDENCY_WINDOW_S, summed ``by`` labels.

        A client creates an error's series at its first failure, and ``rate`` leaves out a series'
        first sample: an outage's failures stayed invisible until their series' second scrape, while
        the slow calls that ended in them were counted at once (a database outage read as a latency
        regression). A series absent a window ago counts from zero: everything it holds failed since.
        """
        counter = f"{self.failures_metric}{{{promql.matchers({'dependency': dependency})}}}"
        window = f"{DEPENDENCY_WINDOW_S}s"
        failed = f"({counter} unless {counter} offset {window}) or increase({counter}[{window}])"
        return f"sum{f' by ({by})' if by else ''} ({failed}) / {DEPENDENCY_WINDOW_S}"


# Short: the facts are gathered a few seconds into an anomaly, and a window mostly of the minutes
# before it would dilute them. The baseline leaves out the last 2 minutes for the same reason.
DEPENDENCY_WINDOW_S = 15
DEPENDENCY_BASELINE = "[30m:15s] offset 2m"
LEVEL_BEFORE = "[2m:5s] offset 30s"


@dataclass(frozen=True)
class Evidence:
    entity: str
    timestamp: float
    score: float
    threshold: float
    active: bool
    model_version: str = ""
    detector_scores: dict[str, float] = field(default_factory=dict)
    top_metrics: tuple[MetricFact, ...] = ()
    correlated: tuple[CorrelatedMetric, ...] = ()
    service: ServiceFacts = field(default_factory=ServiceFacts)
    dependencies: tuple[DependencyFacts, ...] = ()
    levels: tuple[LevelChange, ...] = ()
    data_quality: dict[str, Any] = field(default_factory=dict)
    model_changes: dict[str, Any] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)  # name -> ready-to-run PromQL
    links: dict[str, str] = field(default_factory=dict)  # name -> Prometheus graph URL
    problems: tuple[str, ...] = ()  # what could not be gathered, and why

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self), digits=4)  # rounded: prompts stay short

    def metric_names(self) -> set[str]:
        """Every metric-like identifier the evidence mentions (facts and queries)."""
        names = {m.metric for m in self.top_metrics} | {c.metric for c in self.correlated}
        names |= {lvl.metric for lvl in self.levels}
        names |= set(self.detector_scores) | set(self.queries)
        for query in self.queries.values():
            names |= set(_IDENT.findall(query))
        for m in self.top_metrics:
            names |= set(_IDENT.findall(m.query or ""))
        names |= {k for k in self.data_quality.get("signals", {})}
        return names

    def hosts(self) -> set[str]:
        hosts = {self.entity}
        if ":" in self.entity:
            hosts.add(self.entity.rsplit(":", 1)[0])
        return hosts


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


class EvidenceCollector:
    """Collect :class:`Evidence` for an :class:`~vigil.events.Anomaly`.

    Parameters
    ----------
    prometheus : PromClient
    entity_label : str
        The label naming the entity on the raw metrics (``instance`` for node_exporter).
    public_url : str
        Prometheus as people reach it, for links; default the API's own URL.
    service_latency_query, service_error_query : str
        Trusted PromQL (from config) for the watched service; empty skips that fact.
    dependencies : mapping
        Per service entity, what it calls and how its calls are measured (:class:`ServiceDependencies`).
    levels : mapping
        Capacity levels to compare with the minutes before, signal -> ``(practical minimum,
        direction)``: ``{"memory_used_ratio": (0.1, 1)}``.
    window_s : float
        How far back correlations and baselines look.
    """

    def __init__(
        self,
        prometheus: PromClient,
        *,
        entity_label: str = "instance",
        public_url: str = "",
        service_latency_query: str = "",
        service_error_query: str = "",
        dependencies: Mapping[str, ServiceDependencies] | None = None,
        levels: Mapping[str, tuple[float, int]] | None = None,
        window_s: float = 1800.0,
        top_n: int = 5,
        max_correlated: int = 5,
        min_correlation: float = 0.7,
        signal_query: Callable[[str, str], str | None] | None = None,
        candidate_signals: Sequence[str] | None = None,
    ) -> None:
        self.prometheus = prometheus
        self.entity_label = check_label_name(entity_label)
        self.public_url = (public_url or prometheus.base_url).rstrip("/")
        self.service_latency_query = service_latency_query
        self.service_error_query = service_error_query
        self.dependencies = dict(dependencies or {})
        self.levels = dict(levels or {})
        self.window_s = window_s
        self.top_n = top_n
        self.max_correlated = max_correlated
        self.signal_query = signal_query
        self.candidate_signals = list(candidate_signals or ())
        self.min_correlation = min_correlation

    def collect(self, anomaly: Anomaly) -> Evidence:
        problems: list[str] = []
        sel = promql.matchers({self.entity_label: anomaly.entity})
        score_query = promql.selector("vigil_anomaly_score", entity=anomaly.entity)
        queries: dict[str, str] = {"anomaly_score": score_query, "target_up": f"up{{{sel}}}"}

        top = list(anomaly.contributions)[: self.top_n]  # the engine's order: what moved enough to matter first
        facts = [self._fact(c, anomaly.entity, sel, problems) for c in top]
        for fact in facts:
            if fact.query:
                queries[fact.metric] = fact.query

        correlated = self._correlated(anomaly, facts, sel, problems)
        service = self._service(problems)
        if self.service_latency_query:
            queries["service_latency_p99"] = self.service_latency_query
        if self.service_error_query:
            queries["service_error_ratio"] = self.service_error_query
        calls = self.dependencies.get(anomaly.entity)
        dependencies = [
            self._dependency(calls, name, kind, queries, problems)
            for name, kind in (calls.depends_on if calls else {}).items()
        ]
        levels = [lvl for lvl in (self._level(m, anomaly.entity, sel, problems) for m in self.levels) if lvl]
        data_quality = self._data_quality(anomaly.entity, sel, problems)
        model_changes = self._model_changes(anomaly, problems)
        links = {name: promql.graph_url(self.public_url, q) for name, q in queries.items()}
        return replace(
            evidence_from_anomaly(anomaly),
            top_metrics=tuple(facts),
            correlated=tuple(correlated),
            service=service,
            dependencies=tuple(dependencies),
            levels=tuple(levels),
            data_quality=data_quality,
            model_changes=model_changes,
            queries=queries,
            links=links,
            problems=tuple(dict.fromkeys(problems)),
        )

    # ---- parts -------------------------------------------------------------------------------------

    def _query(self, metric: str, entity: str, sel: str) -> str | None:
        # The ingest catalogue's definition (what the model was trained on), else a plain metric name.
        if self.signal_query is not None:
            query = self.signal_query(metric, entity)
            if query:
                return query
        return promql.signal_query(metric, sel)

    def _ask(self, problems: list[str], what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (UpstreamUnavailable, BadRequest) as exc:
            problems.append(f"{what}: {exc}")
            return None

    def _fact(self, c: Contribution, entity: str, sel: str, problems: list[str]) -> MetricFact:
        query = self._query(c.metric, entity, sel)
        value, baseline = _finite(c.value), _finite(c.baseline)
        current = None
        if query:
            current = self._ask(problems, f"current {c.metric}", self.prometheus.scalar, query)
            if baseline is None:
                past = f"avg_over_time(({query})[1h:1m] offset 15m)"
                baseline = self._ask(problems, f"baseline {c.metric}", self.prometheus.scalar, past)
            if value is None:
                value = current
        link = promql.graph_url(self.public_url, query) if query else None
        return MetricFact(c.metric, value, baseline, c.share, current, query, link, c.unit)

    def _correlated(
        self, anomaly: Anomaly, facts: Sequence[MetricFact], sel: str, problems: list[str]
    ) -> list[CorrelatedMetric]:
        anchor = next((f for f in facts if f.query), None)
        if anchor is None or anchor.query is None:
            return []
        end = anomaly.timestamp if math.isfinite(anomaly.timestamp) else time.time()
        start, step = end - self.window_s, max(self.window_s / 120, 1.0)
        base = self._ask(problems, "correlation anchor", self.prometheus.query_range, anchor.query, start, end, step)
        if not base:
            return []
        top_names = {f.metric for f in facts}
        candidates: dict[str, str] = {}
        for c in anomaly.contributions:
            q = self._query(c.metric, anomaly.entity, sel)
            if q and c.metric != anchor.metric:
                candidates[c.metric] = q
        for name in self.candidate_signals:
            if name not in top_names and name != "up":
                candidates.setdefault(name, self._query(name, anomaly.entity, sel) or "")
        found: list[CorrelatedMetric] = []
        for name, q in candidates.items():
            if name == anchor.metric or not q:
                continue
            try:
                other = self.prometheus.query_range(q, start, end, step)
            except (UpstreamUnavailable, BadRequest) as exc:
                problems.append(f"correlation {name}: {exc}")
                continue
            r = _pearson(base[0], other[0]) if other else None
            if r is not None and abs(r) >= self.min_correlation:
                found.append(CorrelatedMetric(name, round(r, 3), q))
        found.sort(key=lambda c: abs(c.correlation), reverse=True)
        return found[: self.max_correlated]

    def _service(self, problems: list[str]) -> ServiceFacts:
        def now_and_before(query: str) -> tuple[float | None, float | None]:
            if not query:
                return None, None
            now = self._ask(problems, "service", self.prometheus.scalar, query)
            before = self._ask(
                problems, "service baseline", self.prometheus.scalar, f"avg_over_time(({query})[1h:1m] offset 15m)"
            )
            return now, before

        latency, latency_before = now_and_before(self.service_latency_query)
        errors, errors_before = now_and_before(self.service_error_query)
        return ServiceFacts(latency, latency_before, errors, errors_before)

    def _level(self, metric: str, entity: str, sel: str, problems: list[str]) -> LevelChange | None:
        query = self._query(metric, entity, sel)
        if not query:
            return None
        minimum, direction = self.levels[metric]
        extreme = "max_over_time" if direction > 0 else "min_over_time"
        what = f"level {metric}"
        now = _finite(self._ask(problems, what, self.prometheus.scalar, query))
        before = _finite(self._ask(problems, what, self.prometheus.scalar, f"{extreme}(({query}){LEVEL_BEFORE})"))
        if now is None or before is None:
            return None  # not this entity's signal, or no history yet
        return LevelChange(metric, now, before, minimum, direction)

    def _dependency(
        self, service: ServiceDependencies, name: str, kind: str, queries: dict[str, str], problems: list[str]
    ) -> DependencyFacts:
        latency, failed = service.latency_query(name), service.failures_query(name)
        queries[f"dependency_{name}_latency"] = latency
        queries[f"dependency_{name}_failures"] = failed
        what, scalar = f"dependency {name}", self.prometheus.scalar
        now = self._ask(problems, what, scalar, latency)
        before = self._ask(problems, what, scalar, f"avg_over_time(({latency}){DEPENDENCY_BASELINE})")
        by_error = self._ask(problems, what, self.prometheus.query, service.failures_query(name, by="error"))
        failed_before = self._ask(problems, what, scalar, f"avg_over_time(({failed}){DEPENDENCY_BASELINE})")
        return DependencyFacts(
            name,
            kind,
            _finite(now),
            _finite(before),
            {x.labels.get("error", "?"): x.value for x in by_error or [] if math.isfinite(x.value) and x.value > 0},
            _finite(failed_before),
        )

    def _data_quality(self, entity: str, sel: str, problems: list[str]) -> dict[str, Any]:
        up = self._ask(problems, "target up", self.prometheus.query, f"up{{{sel}}}")
        age = self._ask(problems, "sample age", self.prometheus.scalar, f"time() - max(timestamp(up{{{sel}}}))")
        vigil_sel = promql.matchers({"entity": entity})
        quality = self._ask(
            problems, "data quality", self.prometheus.query, f'{{__name__=~"vigil_data_.+",{vigil_sel}}}'
        )
        signals = {s.labels.get("__name__", "?"): s.value for s in quality or []}
        if up is None:
            state = "unknown"
        elif not up:
            state = "no_up_series"
        elif any(s.value == 0 for s in up):
            state = "target_down"
        elif age is not None and age > 60:
            state = "stale"
        else:
            state = "ok"
        return {
            "state": state,
            "up": [s.value for s in up] if up else [],
            "last_sample_age_s": age,
            "signals": signals,
        }

    def _model_changes(self, anomaly: Anomaly, problems: list[str]) -> dict[str, Any]:
        recent = self._ask(problems, "model history", self.prometheus.query, "max_over_time(vigil_model_info[6h])")
        current = self._ask(problems, "model info", self.prometheus.query, "vigil_model_info")
        versions = sorted({s.labels.get("version", "") for s in recent or []} - {""})
        now_versions = sorted({s.labels.get("version", "") for s in current or []} - {""})
        return {
            "anomaly_model_version": anomaly.model_version,
            "serving_versions": now_versions,
            "versions_last_6h": versions,
            "changed_recently": len(versions) > 1,
        }


def _pearson(a: RangeSeries, b: RangeSeries) -> float | None:
    left = dict(zip(a.timestamps.tolist(), a.values.tolist(), strict=True))
    pairs = [
        (left[t], v)
        for t, v in zip(b.timestamps.tolist(), b.values.tolist(), strict=True)
        if t in left and math.isfinite(left[t]) and math.isfinite(v)
    ]
    if len(pairs) < 10:
        return None
    x, y = np.array(pairs, dtype=float).T
    # A metric that varied by less than 0.1% did not "move"; Pearson would still find a pattern in noise.
    if x.std() <= 1e-3 * abs(x.mean()) or y.std() <= 1e-3 * abs(y.mean()) or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def anomaly_from_prometheus(
    prometheus: PromClient, entity: str | None = None, *, contribution_metric: str = "vigil_anomaly_top_metric"
) -> Anomaly:
    """Rebuild an entity's current anomaly from Vigil's own series in Prometheus.

    Without ``entity``, the entity with the highest ``vigil_anomaly_score`` right now.
    """
    if entity is None:
        top = prometheus.query("topk(1, vigil_anomaly_score)")
        if not top or "entity" not in top[0].labels:
            raise NotFound("Prometheus has no vigil_anomaly_score series", hint="is `vigil serve` running and scraped?")
        entity = top[0].labels["entity"]
    sel = {"entity": entity}
    score = prometheus.scalar(f"max({promql.selector('vigil_anomaly_score', **sel)})")
    if score is None:
        raise NotFound(f"no vigil_anomaly_score for entity {entity!r} in Prometheus")
    flag = prometheus.scalar(f"max({promql.selector('vigil_anomaly', **sel)})")
    threshold = prometheus.scalar(f"max({promql.selector('vigil_anomaly_threshold', **sel)})")
    shares = prometheus.query(promql.selector(contribution_metric, **sel))
    contributions = tuple(
        sorted(
            (
                Contribution(s.labels["metric"], math.nan, math.nan, s.value)
                for s in shares
                if "metric" in s.labels and math.isfinite(s.value)
            ),
            key=lambda c: c.share,
            reverse=True,
        )
    )
    active = bool(flag) if flag is not None else (threshold is not None and score > threshold)
    return Anomaly(
        entity=entity,
        timestamp=time.time(),
        score=score,
        threshold=threshold if threshold is not None else math.nan,
        active=active,
        contributions=contributions,
    )


def evidence_from_anomaly(anomaly: Anomaly, *, problem: str = "") -> Evidence:
    """Evidence from the anomaly alone, when no Prometheus is reachable or configured."""
    top = list(anomaly.contributions)[:5]
    return Evidence(
        entity=anomaly.entity,
        timestamp=anomaly.timestamp,
        score=anomaly.score,
        threshold=anomaly.threshold,
        active=anomaly.active,
        model_version=anomaly.model_version,
        detector_scores=dict(anomaly.detector_scores),
        top_metrics=tuple(
            MetricFact(c.metric, _finite(c.value), _finite(c.baseline), c.share, unit=c.unit) for c in top
        ),
        problems=(problem,) if problem else (),
    )


def anomalies_from_prometheus(
    prometheus: PromClient, *, contribution_metric: str = "vigil_anomaly_top_metric"
) -> list[Anomaly]:
    """Every entity Vigil scores, as Prometheus last saw it (three queries, not one per entity)."""
    scores = {s.labels["entity"]: s.value for s in prometheus.query("vigil_anomaly_score") if "entity" in s.labels}
    alarms = {s.labels["entity"]: s.value for s in prometheus.query("vigil_anomaly") if "entity" in s.labels}
    tops: dict[str, list[Contribution]] = {}
    for s in prometheus.query(check_metric_name(contribution_metric)):
        if "entity" in s.labels and "metric" in s.labels and math.isfinite(s.value):
            tops.setdefault(s.labels["entity"], []).append(
                Contribution(s.labels["metric"], math.nan, math.nan, s.value)
            )
    now = time.time()
    return [
        Anomaly(
            entity=entity,
            timestamp=now,
            score=score,
            threshold=math.nan,
            active=bool(alarms.get(entity, 0.0)),
            contributions=tuple(sorted(tops.get(entity, []), key=lambda c: c.share, reverse=True)),
        )
        for entity, score in scores.items()
    ]
