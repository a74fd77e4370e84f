"""ChatOps: evidence for an anomaly, explanations (runbook signatures or an LLM behind an evidence
gate), and the chat surfaces (Apprise notifications, Slack slash commands, CLI).

Data flow: :class:`~vigil.events.Anomaly` -> :class:`EvidenceCollector` (Prometheus HTTP API) ->
:class:`Evidence` -> :class:`DeterministicExplainer` or :class:`LLMExplainer` -> :class:`Explanation`.
"""

from __future__ import annotations

from vigil.chatops.commands import ChatOps, Command, Reply, parse_command
from vigil.chatops.evidence import (
    Evidence,
    EvidenceCollector,
    MetricFact,
    anomaly_from_prometheus,
    evidence_from_anomaly,
)
from vigil.chatops.explain import DeterministicExplainer, Explainer, Explanation, match_signature
from vigil.chatops.llm import LLMExplainer, build_messages, gate, sanitise
from vigil.chatops.notify import AppriseNotifier
from vigil.chatops.runbooks import SIGNATURES, load_runbooks
from vigil.chatops.slack import SlackVerifier, slack_signature

__all__ = [
    "SIGNATURES",
    "AppriseNotifier",
    "ChatOps",
    "Command",
    "DeterministicExplainer",
    "Evidence",
    "EvidenceCollector",
    "Explainer",
    "Explanation",
    "LLMExplainer",
    "MetricFact",
    "Reply",
    "SlackVerifier",
    "anomaly_from_prometheus",
    "build_messages",
    "evidence_from_anomaly",
    "gate",
    "load_runbooks",
    "match_signature",
    "parse_command",
    "sanitise",
    "slack_signature",
]
