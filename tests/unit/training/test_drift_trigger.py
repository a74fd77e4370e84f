from __future__ import annotations

from pathlib import Path

import pandas as pd

from vigil.datasets import load_smd_like
from vigil.drift import DriftMonitor, DriftReference
from vigil.training.retrainer import DriftTrigger, Retrainer


def test_drift_episode_requests_one_challenger(data_dir: Path) -> None:
    split = load_smd_like(data_dir / "smd", "machine-1-4")
    half = len(split.train) // 2
    ref = DriftReference.fit({c: split.train[c].to_numpy()[:half] for c in split.train.columns}, window=1440)

    def snap(frame: pd.DataFrame):  # type: ignore[no-untyped-def]
        mon = DriftMonitor(ref)
        mon.update_frame({c: frame[c].to_numpy() for c in frame.columns})
        return mon.snapshot()

    quiet, drifted = snap(split.train.iloc[half + 60 : half + 1500]), snap(split.test.iloc[4320:5760])
    assert not quiet.drifted and drifted.drifted
    now = [0.0]
    retrainer = Retrainer(None, lambda _e, _w: pd.DataFrame(), [])  # type: ignore[arg-type]
    trigger = DriftTrigger(retrainer, cooldown_s=600, clock=lambda: now[0])
    assert not trigger.observe("m", quiet)
    assert trigger.observe("m", drifted)
    assert retrainer.status()["pending"] == {"m": "drift:features"}
    assert not trigger.observe("m", drifted)  # same episode
    now[0] = 100.0
    trigger.observe("m", quiet)
    assert not trigger.observe("m", drifted)  # new episode, but inside the cooldown
    now[0] = 1000.0
    trigger.observe("m", quiet)
    assert trigger.observe("m", drifted)
