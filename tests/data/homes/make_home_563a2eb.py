"""Write the Vigil home that commit 563a2eb's code produced, for tests/unit/registry/test_upgrade.py.

Run with that commit's code, from a worktree of it (its tests/ for the real SMD slice and model):

    git worktree add --detach /tmp/vigil-563a2eb 563a2eb
    cd /tmp/vigil-563a2eb && PYTHONPATH=src:. python /path/to/this/file HOME

It writes into HOME (empty): a model fitted on 600 rows of SMD machine-1-3 (the registry's fast test
detectors) registered and promoted in an embedded MLflow store, 120 test rows of the same machine in
the archive, a detection snapshot of that model after 60 of those rows, and beside HOME
``HOME.expected.json``: the model's scores of 300 test rows and the snapshot's entity, which the new
code must reproduce. The fixture committed is a `vigil backup` of HOME taken by the newer code (it
copies, it does not rewrite what 563a2eb wrote), renamed ``vigil-563a2eb``, with that JSON beside it
as ``vigil-563a2eb.expected.json``; the test restores it to any path.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from tests.unit.registry.support import fit_fast, smd_slice
from vigil.ingest.promql import RangeSeries

from vigil.config import load_settings
from vigil.detection.engine import DetectionEngine, LoadedModel, save_snapshot
from vigil.detection.fast import compile_model
from vigil.ingest.archive import Archive
from vigil.ingest.remote_write import DecodedSeries
from vigil.registry import ModelRegistry

ENTITY = "machine-1-3"
T0 = 1_795_000_000.0  # within one UTC hour for the 120 rows at 10 s


def main(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    settings = load_settings(home=home)
    registry = ModelRegistry(settings)
    model = fit_fast(smd_slice(ENTITY, "train", 600))
    info = registry.log_model(ENTITY, model, params={"seed": 0}, metrics={"holdout_event_f1": 0.5},
                              fold_metrics=[], data_hash="d" * 64)  # fmt: skip
    registry.promote(info.name, info.version)

    rows = smd_slice(ENTITY, "test", 120)
    ts = T0 + np.arange(len(rows)) * 10.0
    series = [RangeSeries({"__name__": c, "instance": ENTITY, "job": "smd"}, ts, rows[c].to_numpy(dtype=float))
              for c in rows.columns]  # fmt: skip
    Archive(settings.archive_dir).write_window(series, int(ts[0] * 1000), int(ts[-1] * 1000) + 1)

    scorer, fast = compile_model(model)
    engine = DetectionEngine()
    # 563a2eb's LoadedModel: (version, fingerprint, model, scorer, loaded_at, fast, info)
    engine.set_model(LoadedModel(info.version, f"{info.name}@{info.version}", model, scorer, time.time(),
                                 fast=fast["fast"], info=fast))  # fmt: skip
    for k in range(60):
        row = rows.iloc[k]
        engine.ingest([DecodedSeries(c, {"__name__": c, "instance": ENTITY}, [int(ts[k] * 1000)], [float(row[c])])
                       for c in rows.columns])  # fmt: skip
    save_snapshot(engine, home / "state" / "detection.pkl")

    scores = model.score_frame(smd_slice(ENTITY, "test", 300))["score"].to_numpy(dtype=float)
    expected = {"commit": "563a2eb", "entity": ENTITY, "model": info.name, "version": info.version,
                "scores_test_300": scores.tolist(), "archived_samples": int(len(rows) * len(rows.columns)),
                "snapshot_entities": [v.entity for v in engine.views()]}  # fmt: skip
    home.with_name(home.name + ".expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
