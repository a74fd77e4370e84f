"""A permanent change of the watched service's load level drifts its model and yields a challenger.

Live local stack: 5 minutes archived at the default demo load (2 rps), a champion trained from
the archive, then a second load generator adds 12 rps against the demo service for good. After
3 minutes `vigil drift --json` (the champion's reference vs the archive) must report input drift
for the demo service, and none before the change; a :class:`DriftTrigger` turns that into one retrain
request and the :class:`Retrainer` registers a challenger trained on the new regime.

The stack's own trainer component (`vigil retrain --follow`) checks the same drift every 20 s and
exports it as vigil_drift_*; the test sees Prometheus scrape it and the VigilInputDrift rule go
pending (it fires after its 5-minute `for:`, which the promtool rule test covers).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.stack.stackcli import StackCLI, stack_fixture
from tests.integration.training.test_live_retrain import BASELINE_S, _archived_steps
from tests.unit.registry.support import FAST_PARAMS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SHIFTED_S = 180
ENTITY = "demo"


@pytest.fixture
def stack(vigil_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackCLI]:
    # The stack's own trainer component checks drift over the last 2 minutes every 20 s.
    monkeypatch.setenv("VIGIL_DRIFT_CHECK_WINDOW_S", "120")
    monkeypatch.setenv("VIGIL_DRIFT_CHECK_INTERVAL_S", "20")
    yield from stack_fixture(vigil_home, monkeypatch)


def _prom_value(stack: StackCLI, query: str) -> float | None:
    import requests

    resp = requests.get(f"{stack.url('prometheus')}/api/v1/query", params={"query": query}, timeout=10)
    result = resp.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _drift(stack: StackCLI, since_s: int) -> dict:
    out = stack.run("drift", "-e", ENTITY, "--since", f"{since_s}s", "--json", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)[ENTITY]


def test_load_level_change_drifts_and_produces_a_challenger(stack: StackCLI) -> None:
    from vigil.config import load_settings
    from vigil.drift import DriftMonitor, DriftReference
    from vigil.registry import ModelRegistry
    from vigil.training import DriftTrigger, Retrainer, TrainConfig
    from vigil.training.data import read_archive_window

    up = stack.run("up", timeout=240)
    assert up.returncode == 0, up.stderr[-2000:]
    settings = load_settings()
    deadline = time.monotonic() + BASELINE_S + 240
    while time.monotonic() < deadline:
        steps = _archived_steps(settings, BASELINE_S)
        if steps.get(ENTITY, 0) >= BASELINE_S - 30:
            break
        time.sleep(10)
    else:
        pytest.fail(f"the archive did not fill: {steps}")
    train = stack.run(
        "train", "--source", "archive", "--since", f"{BASELINE_S}s", "-e", ENTITY, "--folds", "1", "--gap", "10",
        "--promote", "always", "--detectors", ",".join(FAST_PARAMS["detectors"]), "--param", "cross_fit=false",
        "--json", timeout=600,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-2000:]
    champion = json.loads(train.stdout)[0]["version"]
    window = json.loads(stack.run("models", "show", ENTITY, "--json").stdout)

    before = _drift(stack, 120)
    # Inputs only: a champion fitted on 5 minutes alarms often on the next minutes (its alert-rate
    # and score reasons may fire); what the load change must move is the service's signals.
    assert before["version"] == champion and "features" not in before["reasons"], before

    extra = subprocess.Popen(
        [sys.executable, "-m", "vigil.demo.loadgen", "--base-rps", "12", "--port", "0", "--seed", "7",
         "--target", stack.url("demo_app")],
        env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(SHIFTED_S)
        after = _drift(stack, SHIFTED_S - 30)
        assert after["drifted"] and "features" in after["reasons"], after
        drifted = sorted(f for f, v in after["features"].items() if v["drifted"])
        assert drifted, after

        # The stack's trainer component saw it too: exported, scraped, and the drift rule is active.
        deadline = time.monotonic() + 120
        exported = alert = None
        while time.monotonic() < deadline and not (exported and alert):
            exported = _prom_value(stack, f'vigil_drift_reason{{entity="{ENTITY}",reason="features"}}')
            alert = _prom_value(stack, f'ALERTS{{alertname="VigilInputDrift",entity="{ENTITY}"}}')
            time.sleep(5)
        assert exported == 1.0, "the trainer component did not export the drift to Prometheus"
        assert alert == 1.0, "the VigilInputDrift rule is neither pending nor firing"

        registry = ModelRegistry(settings)
        reference = DriftReference.from_dict(registry.bundle_json(ENTITY, champion, "drift_reference.json"))
        monitor = DriftMonitor(reference)
        frame = read_archive_window(ENTITY, SHIFTED_S - 30, settings)
        monitor.update_frame({c: frame[c].to_numpy() for c in frame.columns})
        config = TrainConfig(n_folds=1, gap=10, model_params=dict(FAST_PARAMS))
        retrainer = Retrainer.for_stack(settings, registry, window_s=BASELINE_S, config=config)
        trigger = DriftTrigger(retrainer)
        assert trigger.observe(ENTITY, monitor.snapshot())
        assert retrainer.status()["pending"][ENTITY].startswith("drift")
        reason = retrainer.status()["pending"][ENTITY]
        result = retrainer.run_once(ENTITY, reason)
    finally:
        extra.terminate()
        extra.wait(10)
    assert result is not None, retrainer.status()
    assert int(result.version) > int(champion)
    assert registry.aliases(ENTITY)["challenger"] == result.version
    training = registry.bundle_json(ENTITY, result.version, "training.json")
    assert training["window"] and window["version"] == champion
    listed = json.loads(stack.run("models", "list", ENTITY, "--json").stdout)
    assert [v["version"] for v in listed][-1] == result.version
