"""A live local stack with its first minutes archived, shared by the live training modules
(test_live_training.py, test_live_drift.py): each starts its own, so the two run on two test workers
at once instead of one after the other."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.stack.stackcli import StackCLI, stack_fixture

BASELINE_S = 300  # one CV fold needs ~2 x (120 + gap) steps at the 1 s scrape interval
ENTITY = "demo"
STEP_S = 1.0  # the stack's scrape interval


def archived_stack(home: Path) -> Iterator[StackCLI]:
    """The stack, up under ``home``, with BASELINE_S of every entity archived."""
    from vigil.config import load_settings

    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIGIL_HOME", str(home))
        mp.delenv("VIGIL_CONFIG", raising=False)
        mp.setenv("VIGIL_RETRAIN_INTERVAL_S", "0")  # the tests drive retraining themselves
        # The stack's own trainer component checks drift over the last 2 minutes every 20 s.
        mp.setenv("VIGIL_DRIFT_CHECK_WINDOW_S", "120")
        mp.setenv("VIGIL_DRIFT_CHECK_INTERVAL_S", "20")
        for cli in stack_fixture(home, mp):
            up = cli.run("up", timeout=240)
            assert up.returncode == 0, up.stderr[-2000:]
            settings = load_settings()
            deadline = time.monotonic() + BASELINE_S + 240
            steps: dict[str, int] = {}
            while time.monotonic() < deadline:
                steps = archived_steps(settings, BASELINE_S)
                if len(steps) >= 2 and min(steps.values()) >= BASELINE_S - 30:
                    break
                time.sleep(10)
            else:
                pytest.fail(f"the archive did not fill: {steps}")
            yield cli


def archived_steps(settings: object, since_s: float) -> dict[str, int]:
    from vigil.errors import VigilError
    from vigil.ingest import signals

    out: dict[str, int] = {}
    try:
        for entity in signals.list_entities(settings=settings):
            frame = signals.load_entity_frame(entity, since_s=since_s, settings=settings)
            out[entity] = int(frame.notna().any(axis=1).sum())
    except VigilError:  # empty archive yet
        return {}
    return out


def prom_value(stack: StackCLI, query: str) -> float | None:
    import requests

    resp = requests.get(f"{stack.url('prometheus')}/api/v1/query", params={"query": query}, timeout=10)
    result = resp.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def train_champions(stack: StackCLI, *entity: str) -> dict[str, str]:
    """Champions (fast detectors) trained on the archived baseline: entity -> version."""
    from tests.unit.registry.support import FAST_PARAMS

    only = [arg for e in entity for arg in ("-e", e)]
    train = stack.run(
        "train", "--source", "archive", "--since", f"{BASELINE_S}s", *only, "--folds", "1", "--gap", "10",
        "--promote", "always", "--detectors", ",".join(FAST_PARAMS["detectors"]), "--param", "cross_fit=false",
        "--json", timeout=600,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-2000:]
    return {r["entity"]: r["version"] for r in json.loads(train.stdout)}
