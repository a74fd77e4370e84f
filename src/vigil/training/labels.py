"""Operators' verdicts on incidents as labels for what the models learn.

An operator marks an incident a false positive (nothing was wrong) or confirms it (``vigil incidents
--false-positive ID``, ``/vigil false-positive ID``, ``POST /v1/incidents/<id>/feedback``). The
retrainer removes every period its champion alarmed on, so a model that cried wolf would never see
that period again and keep crying: a false positive's period is learned from as normal instead. A
confirmed incident stays out of the training window whatever the champion made of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vigil.config import Settings
from vigil.detection.incidents import served_incidents

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledPeriod:
    start: float  # unix seconds
    end: float
    verdict: str  # "false_positive" or "confirmed" (vigil.detection.incidents.VERDICTS)


def labelled_periods(incidents: Sequence[Mapping[str, Any]], entity: str, now: float) -> list[LabelledPeriod]:
    """The periods of ``entity``'s incidents an operator judged; an open one lasts until ``now``."""
    out = []
    for incident in incidents:
        try:
            verdict = incident.get("verdict")
            if not verdict or entity not in {e.get("entity") for e in incident.get("entities", [])}:
                continue
            end = incident.get("resolved") or now
            out.append(LabelledPeriod(float(incident["started"]), float(end), str(verdict)))
        except (AttributeError, KeyError, TypeError, ValueError):
            continue  # not an incident as the detection service lists them
    return out


class ServedLabels:
    """An entity's labelled periods from the detection service, for :class:`Retrainer`'s ``labels``.
    When the service does not answer, retraining goes on without labels (and says so in the log)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, entity: str) -> list[LabelledPeriod]:
        incidents = served_incidents(self.settings)
        if incidents is None:
            log.warning("%s: the detection service did not list its incidents; retraining without labels", entity)
            return []
        return labelled_periods(incidents, entity, time.time())
