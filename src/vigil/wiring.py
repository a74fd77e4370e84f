"""The composition root: the one place that builds Vigil's parts from settings and joins them.

Layers below it (docs/architecture.md) never import each other sideways; where two adapters must
work together (the chat evidence reads the ingest catalogue's signals from Prometheus, silences go
to Alertmanager), the joint is made here, once, and the server and the CLI call it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vigil.alerting.client import AlertmanagerClient, Matcher
from vigil.chatops.commands import ChatOps, Feedback
from vigil.chatops.evidence import (
    EvidenceCollector,
    ServiceDependencies,
    anomalies_from_prometheus,
    anomaly_from_prometheus,
)
from vigil.chatops.explain import DeterministicExplainer, Explainer
from vigil.chatops.llm import LLMExplainer
from vigil.config import Settings
from vigil.events import Anomaly
from vigil.ingest import catalog
from vigil.prometheus import PromClient


def build_chatops(
    settings: Settings,
    *,
    anomalies: Callable[[], Sequence[Anomaly]] | None = None,
    explainer: Explainer | None = None,
    feedback: Feedback | None = None,
) -> ChatOps:
    """The standard wiring: Prometheus evidence, runbooks (+ LLM when configured), Alertmanager silences."""
    # Short: evidence is gathered while Alertmanager waits on the webhook.
    prometheus = PromClient(settings.effective_prometheus_url, timeout_s=5.0)
    signal_query, candidates = catalog_queries()
    collector = EvidenceCollector(
        prometheus,
        entity_label=settings.serving.entity_label,
        public_url=settings.chatops.public_prometheus_url or settings.effective_prometheus_url,
        service_latency_query=settings.chatops.service_latency_query,
        service_error_query=settings.chatops.service_error_query,
        dependencies=service_dependencies(settings),
        levels=capacity_levels(settings),
        signal_query=signal_query,
        candidate_signals=candidates,
    )
    if explainer is None:
        deterministic = DeterministicExplainer(settings.chatops.runbooks_dir or None)
        explainer = LLMExplainer(settings.llm, fallback=deterministic) if settings.llm.base_url else deterministic
    alertmanager = AlertmanagerClient(settings.effective_alertmanager_url)

    def silencer(entity: str, duration_s: float, created_by: str, comment: str) -> str:
        return alertmanager.create_silence(
            [Matcher("entity", entity)], duration_s=duration_s, created_by=created_by, comment=comment
        )

    def lookup(entity: str | None) -> Anomaly:
        return anomaly_from_prometheus(prometheus, entity, contribution_metric=settings.chatops.contribution_metric)

    if anomalies is None:
        # Outside the serving process (CLI): what Prometheus last scraped from `vigil serve`.
        def anomalies() -> list[Anomaly]:
            return anomalies_from_prometheus(prometheus, contribution_metric=settings.chatops.contribution_metric)

    return ChatOps(
        anomalies=anomalies,
        explainer=explainer,
        collector=collector,
        silencer=silencer,
        lookup=lookup,
        feedback=feedback,
    )


def service_dependencies(settings: Settings) -> dict[str, ServiceDependencies]:
    """Per service entity of ``entities:``, what it calls and the metrics that measure the calls."""
    return {
        name: ServiceDependencies(e.depends_on, e.dependency_duration_metric, e.dependency_failures_metric)
        for name, e in settings.entities.items()
        if e.depends_on
    }


def capacity_levels(settings: Settings) -> dict[str, tuple[float, int]]:
    """The catalogue's capacity levels (signals whose rule says ``range``: memory used, free disk
    space) with their practical minimum and the direction that hurts, as vigil.yml sets them."""
    host = [s.name for s in catalog.SIGNALS.get("host", ())]
    rules = catalog.signal_minimums(host, settings.signals)
    return {
        name: (float(rule["min"]), -1 if rule["direction"] == "down" else 1)
        for name, rule in rules.items()
        if rule.get("range") and rule["direction"] != "both"
    }


def catalog_queries() -> tuple[Callable[[str, str], str | None], list[str]]:
    """PromQL for the ingest catalog's signals (the names the model's contributions carry): how
    the evidence collector (chatops) reads what the catalogue (ingest) defines."""
    by_name = {s.name: (kind, s) for kind, group in catalog.SIGNALS.items() for s in group}

    def query(metric: str, entity: str) -> str | None:
        found = by_name.get(metric.split("__", 1)[0])
        if found is None:
            return None
        kind, signal = found
        if kind == "host":
            return str(signal.promql(catalog.Entity("host", entity, catalog.HOST_LABEL)))
        # A service is named by the first of these labels its series carry; ask for either.
        return " or ".join(
            f"({signal.promql(catalog.Entity('service', entity, label))})" for label in catalog.SERVICE_LABELS
        )

    return query, [s.name for s in catalog.SIGNALS.get("host", ())]
