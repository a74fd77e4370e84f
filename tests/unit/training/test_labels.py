"""Operators' verdicts as labelled periods, read from the incidents the detection service lists."""

from __future__ import annotations

from tests.conftest import free_port
from vigil.config import load_settings
from vigil.training.labels import LabelledPeriod, ServedLabels, labelled_periods

INCIDENTS = [
    {"id": "a", "started": 100.0, "resolved": 160.0, "verdict": "false_positive",
     "entities": [{"entity": "demo"}, {"entity": "127.0.0.1:19100"}]},
    {"id": "b", "started": 300.0, "resolved": None, "verdict": "confirmed", "entities": [{"entity": "demo"}]},
    {"id": "c", "started": 400.0, "resolved": 420.0, "verdict": "", "entities": [{"entity": "demo"}]},
    {"id": "d", "started": 500.0, "resolved": 520.0, "verdict": "confirmed", "entities": [{"entity": "web-1"}]},
    {"id": "e", "started": "soon", "verdict": "confirmed", "entities": [{"entity": "demo"}]},
    "not an incident", {"id": "f", "verdict": "confirmed", "entities": ["demo"]},
]  # fmt: skip


def test_judged_incidents_of_the_entity_are_its_labelled_periods() -> None:
    assert labelled_periods(INCIDENTS, "demo", now=1000.0) == [
        LabelledPeriod(100.0, 160.0, "false_positive"),
        LabelledPeriod(300.0, 1000.0, "confirmed"),  # still open: until now
    ]
    assert labelled_periods(INCIDENTS, "127.0.0.1:19100", now=1000.0) == [
        LabelledPeriod(100.0, 160.0, "false_positive")
    ]


def test_without_the_detection_service_retraining_has_no_labels(vigil_home) -> None:  # noqa: ANN001
    settings = load_settings(ports={"vigil": free_port()})
    assert ServedLabels(settings)("demo") == []
