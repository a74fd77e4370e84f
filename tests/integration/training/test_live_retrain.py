"""Scheduled retraining on the live local stack while `vigil serve` keeps scoring.

Runs the whole stack (`vigil up` on free ports), lets the collector archive ~5 minutes, trains a
champion from the archive, then starts a :class:`Retrainer` on a 30 s schedule over the archive.
Checks: new versions appear in the registry (as `vigil models list` shows them), and Prometheus'
`vigil_anomaly_score` series has no missing step while the retrain runs.

The Retrainer runs in this test process, beside the stack, not inside `vigil serve` (serving does
not start one yet); serving picks up promoted champions through the registry as it would then.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.integration.stack.stackcli import StackCLI, stack_fixture
from tests.unit.registry.support import FAST_PARAMS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BASELINE_S = 300  # one CV fold needs ~2 x (120 + gap) steps at the 1 s scrape interval


@pytest.fixture
def stack(vigil_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackCLI]:
    yield from stack_fixture(vigil_home, monkeypatch)


def _archived_steps(settings: object, since_s: float) -> dict[str, int]:
    from vigil.errors import VigilError
    from vigil.ingest import signals

    out: dict[str, int] = {}
    try:
        for entity in signals.list_entities(settings=settings):
            frame = signals.load_entity_frame(entity, since_s=since_s, settings=settings)
            out[entity] = int(frame.notna().any(axis=1).sum())
    except (VigilError, OSError):  # empty archive yet, or a part compacted away mid-read
        return {}
    return out


def test_scheduled_retrain_keeps_scores_flowing(stack: StackCLI) -> None:
    from vigil.config import load_settings
    from vigil.ingest.promql import PromClient
    from vigil.registry import ModelRegistry
    from vigil.training import Retrainer, TrainConfig
    from vigil.validation.campaign import wait_scoring

    up = stack.run("up", timeout=240)
    assert up.returncode == 0, up.stderr[-2000:]
    settings = load_settings()

    deadline = time.monotonic() + BASELINE_S + 240
    while time.monotonic() < deadline:
        steps = _archived_steps(settings, BASELINE_S)
        if steps and min(steps.values()) >= BASELINE_S - 30:
            break
        time.sleep(10)
    else:
        pytest.fail(f"the archive did not fill: {steps}")

    train = stack.run(
        "train", "--source", "archive", "--since", f"{BASELINE_S}s", "--folds", "1", "--gap", "10",
        "--promote", "always", "--detectors", ",".join(FAST_PARAMS["detectors"]), "--param", "cross_fit=false",
        "--json", timeout=600,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-2000:]
    baseline = {r["entity"]: r["version"] for r in json.loads(train.stdout)}
    assert wait_scoring(settings, 180) >= 1

    registry = ModelRegistry(settings)
    retrainer = Retrainer.for_stack(
        settings,
        registry,
        interval_s=30,
        window_s=BASELINE_S,
        config=TrainConfig(n_folds=1, gap=10, model_params=dict(FAST_PARAMS)),
    )
    t0 = time.time()
    retrainer.start(run_now=True)
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            st = retrainer.status()["entities"]
            if st and all(s["runs"] >= 1 for s in st.values()) and len(st) >= len(baseline):
                break
            time.sleep(5)
        else:
            pytest.fail(f"no scheduled retrain finished: {retrainer.status()}")
    finally:
        retrainer.stop(timeout=600)
    t1 = time.time()

    status = retrainer.status()["entities"]
    for entity, version in baseline.items():
        assert status[entity]["last_version"] not in (None, version), status[entity]
    listed = json.loads(stack.run("models", "list", "--json").stdout)
    assert len(listed) >= 2 * len(baseline)

    # Scores kept arriving at every scrape step while training ran: no hole in the series.
    time.sleep(10)  # let Prometheus scrape past t1
    step = settings.scrape_interval_s
    # Only steps whose newest score is at most 3 scrapes old count; Prometheus' 5-minute lookback
    # would otherwise fill a hole with the last value.
    fresh = f"count((time() - timestamp(vigil_anomaly_score)) <= {3 * step})"
    series = PromClient(settings.effective_prometheus_url).query_range(fresh, t0, t1, step)
    assert series, "no vigil_anomaly_score in Prometheus during the retrain"
    ts = np.asarray(series[0].timestamps)
    gaps = np.diff(ts)
    missing = int(round((t1 - t0) / step)) + 1 - len(ts)
    assert gaps.max() <= 3 * step and missing <= 3, f"longest hole {gaps.max():.1f}s, {missing} steps missing"
