"""The LLM path's failure modes against real HTTP peers that produce no model text at all.

(Answers from a real model are tested in tests/integration/chatops/test_llm.py against a real local
model server; nothing here fabricates model output.)
"""

from __future__ import annotations

import time

from tests.conftest import free_port
from tests.unit.alerting.httppeer import HTTPPeer
from vigil.chatops.evidence import Evidence, MetricFact
from vigil.chatops.llm import LLMExplainer
from vigil.config import LLMSettings

EVIDENCE = Evidence("web-1:9100", 1.7e9, 0.93, 0.8, True, top_metrics=(MetricFact("cpu_busy", 0.97, 0.2, 0.7),))


def explainer(url: str, *, timeout_s: float = 2.0, retries: int = 0) -> LLMExplainer:
    return LLMExplainer(LLMSettings(base_url=f"{url}/v1", model="m", timeout_s=timeout_s, retries=retries))


def test_hung_server_times_out_to_the_deterministic_answer() -> None:
    with HTTPPeer(delay_s=5.0) as peer:
        started = time.monotonic()
        explanation = explainer(peer.url, timeout_s=0.5).explain(EVIDENCE)
        assert time.monotonic() - started < 3.0
    assert explanation.explainer == "deterministic" and explanation.signature == "cpu_saturation"
    assert explanation.llm["attempted"] and not explanation.llm["used"]
    assert explanation.llm["reason"] == "timeout after 0.5s"
    request = peer.requests[0]
    assert request.path == "/v1/chat/completions" and request.json()["max_tokens"] == 400


def test_connection_refused_falls_back() -> None:
    explanation = explainer(f"http://127.0.0.1:{free_port()}").explain(EVIDENCE)
    assert explanation.explainer == "deterministic" and explanation.llm["reason"].startswith("unreachable")


def test_server_errors_are_retried_then_fall_back() -> None:
    with HTTPPeer(status=503, body=b'{"error": {"message": "overloaded"}}') as peer:
        explanation = explainer(peer.url, retries=1).explain(EVIDENCE)
    assert explanation.llm["reason"] == "HTTP 503 from the model server"
    assert len(peer.requests) == 2  # the first attempt and one retry
    prompt = peer.requests[0].json()["messages"][1]["content"]
    assert prompt.startswith("<evidence>\n") and "cpu_busy" in prompt
