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
from vigil.detection.served import served_incidents, served_maintenance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledPeriod:
    start: float  # unix seconds
    end: float
    verdict: str  # "false_positive" or "confirmed" (vigil.detection.incidents.VERDICTS), or "maintenance"


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


def maintenance_periods(windows: Sequence[Mapping[str, Any]], entity: str) -> list[LabelledPeriod]:
    """The maintenance windows (as ``GET /v1/maintenance`` lists them) that apply to ``entity``."""
    out = []
    for window in windows:
        try:
            entities = window.get("entities") or []
            if entities and entity not in entities:
                continue
            out.append(LabelledPeriod(float(window["start"]), float(window["end"]), "maintenance"))
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return out


class ServedLabels:
    """An entity's labelled periods from the detection service, for :class:`Retrainer`'s ``labels``:
    operators' verdicts on incidents, and the maintenance windows (declared in vigil.yml or added
    through the API). When the service does not answer, retraining goes on without them (and says
    so in the log); vigil.yml's windows still apply there (:meth:`Retrainer._judged`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, entity: str) -> list[LabelledPeriod]:
        incidents = served_incidents(self.settings)
        windows = served_maintenance(self.settings)
        if incidents is None or windows is None:
            log.warning("%s: the detection service did not list its incidents and maintenance; retraining "
                        "without them", entity)  # fmt: skip
        return labelled_periods(incidents or [], entity, time.time()) + maintenance_periods(windows or [], entity)
