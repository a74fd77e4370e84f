"""A permanent change of the watched service's load level drifts its model and yields a challenger,
on a live local stack of its own (tests/integration/training/archived.py).

A second load generator adds 12 rps for good. After 3 minutes `vigil drift --json` (the champion's
reference vs the archive) must report input drift for the demo service, and none before the change;
a :class:`DriftTrigger` turns that into one retrain request and the :class:`Retrainer` registers a
challenger trained on the new regime. The stack's own trainer component (`vigil retrain --follow`)
checks the same drift every 20 s and exports it as vigil_drift_*; the test sees Prometheus scrape it
and the VigilInputDrift rule go pending (it fires after its 5-minute `for:`, which the promtool rule
test covers).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.integration.stack.stackcli import StackCLI
from tests.integration.training.archived import BASELINE_S, ENTITY, archived_stack, prom_value, train_champions
from tests.unit.registry.support import FAST_PARAMS
from vigil.procfs import stat_fields

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SHIFTED_S = 180


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackCLI]:
    yield from archived_stack(tmp_path_factory.mktemp("live-drift") / "vigil-home")


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

    settings = load_settings()
    champion = train_champions(stack, ENTITY)[ENTITY]
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
            exported = prom_value(stack, f'vigil_drift_reason{{entity="{ENTITY}",reason="features"}}')
            alert = prom_value(stack, f'ALERTS{{alertname="VigilInputDrift",entity="{ENTITY}"}}')
            time.sleep(5)
        assert exported == 1.0, "the trainer component did not export the drift to Prometheus"
        assert alert == 1.0, "the VigilInputDrift rule is neither pending nor firing"
        # Each check loads the champion and scores the window with it: background work, niced so that
        # it yields to the host's services and never reads as their CPU load.
        fields = stat_fields(stack.pids()["trainer"])
        assert fields is not None and int(fields[16]) == 10  # index 16: field 19, nice

        registry = ModelRegistry(settings)
        reference = DriftReference.from_dict(registry.bundle_json(ENTITY, champion, "drift_reference.json"))
        monitor = DriftMonitor(reference)
        frame = read_archive_window(ENTITY, SHIFTED_S - 30, settings)
        monitor.update_frame({c: frame[c].to_numpy() for c in frame.columns})
        # The window spans both regimes: the champion's alarms on the new one are masked out unless
        # they cover most of the window, and what is left must still fill a fold (120 steps).
        config = TrainConfig(n_folds=1, gap=10, min_train_fraction=0.6, model_params=dict(FAST_PARAMS))
        retrainer = Retrainer.for_stack(settings, registry, window_s=BASELINE_S + SHIFTED_S, config=config)
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
