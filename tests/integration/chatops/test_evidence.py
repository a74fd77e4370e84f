"""Evidence from a real Prometheus (real node_exporter + Vigil-shaped series)."""

from __future__ import annotations

import time

import pytest
import requests

from tests.integration.chatops.conftest import FAKE_HOST, INJECTED, PromStack
from vigil import promql
from vigil.chatops.evidence import EvidenceCollector, anomaly_from_prometheus
from vigil.chatops.explain import DeterministicExplainer
from vigil.config import load_settings
from vigil.events import Anomaly, Contribution
from vigil.prometheus import PromClient
from vigil.wiring import capacity_levels, catalog_queries, service_dependencies

pytestmark = pytest.mark.integration


def collector(stack: PromStack) -> EvidenceCollector:
    signal_query, candidates = catalog_queries()
    return EvidenceCollector(
        PromClient(stack.prometheus_url),
        levels=capacity_levels(load_settings()),
        service_latency_query='max(scrape_duration_seconds{job="node"})',
        service_error_query="1 - avg(up)",
        window_s=120,
        signal_query=signal_query,
        candidate_signals=candidates,
    )


def test_evidence_for_a_real_node_exporter_host(prom_stack: PromStack) -> None:
    entity = prom_stack.node_instance
    anomaly = Anomaly(
        entity,
        time.time(),
        0.9,
        0.8,
        True,
        (
            Contribution("cpu_busy", 0.97, 0.2, 0.5),
            Contribution("memory_used_ratio", 0.5, 0.45, 0.2),
            Contribution("node_load1", 3.0, 0.5, 0.1),
            Contribution("feature_without_prometheus_name!", 1.0, 0.0, 0.05),
        ),
        {"iforest": 0.91},
        "v3",
    )
    ev = collector(prom_stack).collect(anomaly)
    facts = {f.metric: f for f in ev.top_metrics}
    assert set(facts) == {"cpu_busy", "memory_used_ratio", "node_load1", "feature_without_prometheus_name!"}
    assert facts["cpu_busy"].current is not None and 0 <= facts["cpu_busy"].current <= 1
    assert facts["memory_used_ratio"].current is not None and 0 < facts["memory_used_ratio"].current < 1
    assert facts["node_load1"].current is not None
    assert facts["feature_without_prometheus_name!"].query is None  # no guessing a query for it
    assert ev.data_quality["state"] == "ok" and ev.data_quality["up"] == [1.0]
    assert ev.service.latency_p99_s is not None and ev.service.error_ratio == 0.0
    assert ev.model_changes["serving_versions"] == ["v3"] and not ev.model_changes["changed_recently"]
    # This host's capacity levels against the minutes before: read once Prometheus holds 30 s of them,
    # and (on a quiet machine) unchanged.
    deadline = time.monotonic() + 60
    while not ev.levels and time.monotonic() < deadline:
        time.sleep(2)
        ev = collector(prom_stack).collect(anomaly)
    levels = {lvl.metric: lvl for lvl in ev.levels}
    assert {"memory_used_ratio", "fs_free_ratio"} <= set(levels), ev.levels
    assert 0 < levels["memory_used_ratio"].now < 1 and not levels["memory_used_ratio"].changed
    # Every ready-to-click query runs in Prometheus as it is.
    api = PromClient(prom_stack.prometheus_url)
    for name, query in ev.queries.items():
        api.query(query)  # raises BadRequest on a syntax error
        assert ev.links[name].startswith(f"{prom_stack.prometheus_url}/graph?g0.expr=")
    assert not [p for p in ev.problems if "rejected" in p], ev.problems
    explanation = DeterministicExplainer().explain(ev)
    assert explanation.signature == "cpu_saturation"


def test_injected_entity_selects_only_its_own_series(prom_stack: PromStack) -> None:
    api = PromClient(prom_stack.prometheus_url)
    sel = promql.matchers({"instance": INJECTED})
    # Were the value spliced in unescaped, `or vector(1)` would answer 1; escaped, it selects the
    # series whose instance label really is that text, whose value is 0.5.
    samples = api.query(promql.signal_query("node_load1", sel) or "")
    assert [(s.labels["instance"], s.value) for s in samples] == [(INJECTED, 0.5)]
    nobody = promql.matchers({"instance": 'nobody"} or vector(1) #'})
    assert api.query(promql.signal_query("node_load1", nobody) or "") == []
    # The raw, unescaped splice really is an injection in this Prometheus (the test would catch it).
    raw = requests.get(
        f"{prom_stack.prometheus_url}/api/v1/query", params={"query": f'node_load1{{instance="nobody{INJECTED}"}}'}
    ).json()
    assert raw["status"] == "success" and raw["data"]["result"][0]["value"][1] == "1"

    ev = collector(prom_stack).collect(
        Anomaly(INJECTED, time.time(), 0.41, 0.8, True, (Contribution("load1", 0.5, 0.1, 0.5),))
    )
    assert ev.top_metrics[0].current == 0.5
    assert ev.queries["load1"].count('instance="\\"} or vector(1) #"') == 1, ev.queries


def test_most_anomalous_entity_from_prometheus(prom_stack: PromStack) -> None:
    api = PromClient(prom_stack.prometheus_url)
    anomaly = anomaly_from_prometheus(api)
    assert anomaly.entity == FAKE_HOST and anomaly.active and anomaly.score == pytest.approx(0.93)
    assert [c.metric for c in anomaly.contributions] == ["cpu_busy"]
    injected = anomaly_from_prometheus(api, INJECTED)
    assert injected.score == pytest.approx(0.41) and not injected.active


def test_metrics_that_moved_together_are_found(prom_stack: PromStack) -> None:
    # The exporter swings the fake host's load and memory use in step; wait for enough points.
    api = PromClient(prom_stack.prometheus_url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        end = time.time()
        series = api.query_range(f'node_load1{{instance="{FAKE_HOST}"}}', end - 120, end, 1)
        if series and len(series[0].values) >= 15:
            break
        time.sleep(1)
    anomaly = Anomaly(FAKE_HOST, time.time(), 0.9, 0.8, True, (Contribution("load1", 9.0, 5.0, 0.7),))
    ev = collector(prom_stack).collect(anomaly)
    found = {c.metric: c.correlation for c in ev.correlated}
    assert found.get("memory_used_ratio", 0) > 0.9, ev.correlated
    assert all(abs(r) >= 0.7 for r in found.values())


def test_evidence_uses_the_ingest_catalog_queries(prom_stack: PromStack) -> None:
    from vigil.config import Settings
    from vigil.wiring import build_chatops

    collector = build_chatops(Settings(prometheus_url=prom_stack.prometheus_url)).collector
    assert collector is not None
    names = ("cpu_busy", "memory_used_ratio", "fs_free_ratio", "load1", "tcp_retransmits_per_s")
    anomaly = Anomaly(
        prom_stack.node_instance, time.time(), 0.9, 0.8, True, tuple(Contribution(n, 1.0, 0.5, 0.2) for n in names)
    )
    ev = collector.collect(anomaly)
    for fact in ev.top_metrics:
        assert fact.query and f'instance="{prom_stack.node_instance}"' in fact.query, fact
        assert fact.current is not None, (fact.metric, fact.query, ev.problems)
    assert 0 < {f.metric: f.current for f in ev.top_metrics}["fs_free_ratio"] <= 1
    # The catalog escapes entity names too.
    evil = collector.collect(Anomaly(INJECTED, time.time(), 0.4, 0.8, True, (Contribution("load1", 0.5, 0.1, 0.5),)))
    assert evil.top_metrics[0].current == 0.5


def test_the_demo_services_dependency_calls_name_the_outage(prom_stack: PromStack) -> None:
    """The demo service's real calls, scraped by the real Prometheus: its inventory dependency
    refuses connections (502s), its database answers. The facts name the inventory as the outage."""
    settings = load_settings()
    signal_query, candidates = catalog_queries()
    collector = EvidenceCollector(
        PromClient(prom_stack.prometheus_url),
        dependencies=service_dependencies(settings),
        signal_query=signal_query,
        candidate_signals=candidates,
    )
    anomaly = Anomaly("demo", time.time(), 0.9, 0.8, True, (Contribution("error_ratio", 0.5, 0.0, 0.6),))
    deadline = time.monotonic() + 30
    while True:
        for _ in range(5):  # ~10 requests a second, half of them calling the dead inventory service
            assert requests.get(f"{prom_stack.demo_url}/api/inventory", timeout=5).status_code == 502
            assert requests.get(f"{prom_stack.demo_url}/api/orders", timeout=5).status_code == 200
            time.sleep(0.1)
        ev = collector.collect(anomaly)
        facts = {d.name: d for d in ev.dependencies}
        if facts["inventory"].failures_per_s and facts["database"].latency_s is not None:
            break
        assert time.monotonic() < deadline, ev.dependencies
    assert set(facts["inventory"].failures_per_s) == {"ConnectionError"}, facts
    assert facts["database"].failures_per_s == {} and facts["database"].latency_s < 0.1, facts
    assert not ev.problems, ev.problems
    api = PromClient(prom_stack.prometheus_url)
    for name in ("dependency_inventory_latency", "dependency_inventory_failures", "dependency_database_latency"):
        api.query(ev.queries[name])  # runs as it is
    explanation = DeterministicExplainer().explain(ev)
    assert explanation.signature == "dependency_outage", explanation.text
    assert "at its dependency inventory (network)" in explanation.text.splitlines()[0]
    assert "inventory (network): calls " in explanation.text and "ConnectionError" in explanation.text


def test_an_alert_with_only_symptoms_is_explained_again_once_its_calls_could_have_ended(prom_stack: PromStack) -> None:
    """An alert explained only by the service's own latency, while it has dependencies whose calls show
    nothing (here a declared cache with no calls at all, as a stalled database's calls before they end),
    is gathered once more after the settle time; chat commands and hosts never wait."""
    from vigil.chatops.commands import ChatOps
    from vigil.chatops.evidence import ServiceDependencies

    signal_query, candidates = catalog_queries()
    stalled = ServiceDependencies(
        {"cache": "local"}, "demo_dependency_duration_seconds", "demo_dependency_failures_total"
    )
    chat = ChatOps(
        anomalies=list,
        explainer=DeterministicExplainer(),
        collector=EvidenceCollector(
            PromClient(prom_stack.prometheus_url),
            dependencies={"demo": stalled},
            signal_query=signal_query,
            candidate_signals=candidates,
        ),
    )
    slow = Anomaly("demo", time.time(), 0.9, 0.8, True, (Contribution("latency_p99", 0.9, 0.05, 0.8),))
    started = time.monotonic()
    assert chat.explain_anomaly(slow).signature == "latency_regression"
    asked = time.monotonic() - started
    started = time.monotonic()
    assert chat.explain_alert(slow, settle_s=1.0).signature == "latency_regression"
    assert time.monotonic() - started >= 1.0 + 0.5 * asked  # waited, then asked Prometheus again
    host = Anomaly(prom_stack.node_instance, time.time(), 0.9, 0.8, True, (Contribution("cpu_busy", 0.97, 0.2, 0.9),))
    started = time.monotonic()
    chat.explain_alert(host, settle_s=5.0)
    assert time.monotonic() - started < 5.0  # no dependencies: nothing to wait for
