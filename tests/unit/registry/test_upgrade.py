"""`vigil upgrade-check` on a real home (a real MLflow store with models fitted on SMD, an archive of
real SMD rows, and the serving state each owner writes): every file is named with what this version
does with it, and an older or damaged one is migrated, set aside or refused as docs/operations.md
says, by the readers themselves as well as by the check."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from tests.unit.registry.test_backup import _home
from vigil.alerting.client import AlertmanagerClient
from vigil.alerting.sender import AlertSender
from vigil.chatops.chatlog import ChatLog
from vigil.config import load_settings
from vigil.detection.engine import SNAPSHOT_FORMAT, load_snapshot
from vigil.detection.incidents import IncidentTracker, Topology
from vigil.detection.maintenance import MaintenanceBook
from vigil.registry import ModelRegistry
from vigil.statefile import MIGRATE, READ, REFUSE, START_AFRESH
from vigil.upgrade import check_home

NOW = 1_800_000_000.0
HOME_563A2EB = Path(__file__).parents[2] / "data" / "homes" / "vigil-563a2eb"


def _serving_state(home: Path) -> None:
    state = home / "state"
    MaintenanceBook(path=state / "maintenance.json").add({"duration_s": 600, "reason": "disk swap"}, now=NOW)
    (state / "incidents.json").write_text(json.dumps(IncidentTracker(Topology()).state()))
    ChatLog(state / "chatlog.json").record("inc-1", at=NOW, title="cpu_saturation on web-1", body="...", delivered=True)
    sender = AlertSender(AlertmanagerClient("http://127.0.0.1:9"), state_path=state / "alerts.json")
    with sender._lock:  # what a process that dies mid-outage leaves: the queue as last written
        sender._save_state()
    with open(state / "detection.pkl", "wb") as fh:
        pickle.dump({"format": SNAPSHOT_FORMAT, "step_s": 1.0, "entities": {}, "positions": {}}, fh)


def _cli(home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")} | {"VIGIL_HOME": str(home)}
    cmd = [sys.executable, "-m", "vigil.cli.main", "upgrade-check", "--home", str(home), "--json"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_a_current_home_is_read_throughout(registry: ModelRegistry, fitted_model: object) -> None:
    home = _home(registry, fitted_model)
    _serving_state(home)
    checks = check_home(load_settings(home=home))
    kinds = {c.kind for c in checks}
    assert kinds == {"alert queue", "incidents", "maintenance windows", "chat log", "detection snapshot",
                     "archive", "model bundle", "model registry"}, kinds  # fmt: skip
    assert {c.action for c in checks} == {READ}, [c for c in checks if c.action != READ]
    assert sum(c.kind == "model bundle" for c in checks) == 2
    assert next(c for c in checks if c.kind == "archive").found == "1"
    done = _cli(home)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {c["action"] for c in json.loads(done.stdout)} == {READ}


def test_older_and_damaged_files_are_migrated_set_aside_or_refused(
    registry: ModelRegistry, fitted_model: object
) -> None:
    home = _home(registry, fitted_model)
    _serving_state(home)
    state = home / "state"
    # Maintenance windows as a bare list (format 0): read, and rewritten as format 1 by the next change.
    saved = json.loads((state / "maintenance.json").read_text())
    (state / "maintenance.json").write_text(json.dumps(saved["windows"]))
    # A queue and a snapshot of another format; an archive file missing a column; a bundle of another format.
    (state / "alerts.json").write_text(json.dumps({"format": 2, "alerts": {}}))
    with open(state / "detection.pkl", "wb") as fh:
        pickle.dump({"format": SNAPSHOT_FORMAT + 1}, fh)
    part = next((home / "archive").rglob("*.parquet"))
    pq.write_table(pq.read_table(part).drop_columns(["job"]), part)
    manifest = next(p for p in home.rglob("MANIFEST.json") if "bundle" in p.parts)
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "format": "vigil-bundle/0"}))

    checks = {(c.kind, c.action) for c in check_home(load_settings(home=home))}
    assert ("maintenance windows", MIGRATE) in checks
    assert ("alert queue", START_AFRESH) in checks and ("detection snapshot", START_AFRESH) in checks
    assert (
        ("archive file", REFUSE) in checks and ("model bundle", REFUSE) in checks and ("model bundle", READ) in checks
    )
    done = _cli(home)
    assert done.returncode == 1
    refused = {c["kind"]: c for c in json.loads(done.stdout) if c["action"] == REFUSE}
    assert refused["archive file"]["path"] == str(part) and "job" in refused["archive file"]["detail"]
    assert "vigil-bundle/0" in refused["model bundle"]["detail"]

    # The readers do what the check said.
    book = MaintenanceBook(path=state / "maintenance.json")
    assert [w["reason"] for w in book.windows(now=NOW)] == ["disk swap"]
    book.add({"duration_s": 60}, now=NOW)
    assert json.loads((state / "maintenance.json").read_text())["format"] == 1
    assert (
        AlertSender(AlertmanagerClient("http://127.0.0.1:9"), state_path=state / "alerts.json").firing_entities() == []
    )
    assert (state / "alerts.json.corrupt").is_file()
    assert load_snapshot(state / "detection.pkl") == {"format": SNAPSHOT_FORMAT + 1}  # restore() then starts cold


def test_a_home_written_by_commit_563a2eb_is_read_by_this_code(tmp_path: Path) -> None:
    """The home 563a2eb's code wrote (tests/data/homes/make_home_563a2eb.py, kept as a backup of it):
    restored anywhere, every file is read, the model scores as it did then, the archive holds the
    same samples, and serving resumes from the snapshot instead of warming up."""
    import time

    import numpy as np

    from tests.unit.registry.support import smd_slice
    from vigil.backup import restore
    from vigil.detection.engine import DetectionEngine, LoadedModel
    from vigil.detection.fast import compile_model
    from vigil.ingest.archive import Archive

    expected = json.loads(HOME_563A2EB.with_suffix(".expected.json").read_text())
    home = tmp_path / "home"
    restore(HOME_563A2EB, home)
    settings = load_settings(home=home)

    checks = check_home(settings)
    assert {c.action for c in checks} == {READ}, [c for c in checks if c.action != READ]
    assert next(c for c in checks if c.kind == "archive").found == "none"  # written before files named it
    info, model = ModelRegistry(settings).load(expected["entity"])
    assert info.version == expected["version"]
    scores = model.score_frame(smd_slice(expected["entity"], "test", 300))["score"].to_numpy()  # type: ignore[attr-defined]
    np.testing.assert_allclose(scores, expected["scores_test_300"], rtol=0, atol=1e-9)
    assert Archive(settings.archive_dir).stats().samples == expected["archived_samples"]

    snapshot = load_snapshot(home / "state" / "detection.pkl") or {}
    scorer, fast = compile_model(model)
    engine = DetectionEngine(clock=lambda: snapshot["saved_at"] + 10)  # a restart 10 s after the snapshot
    engine.set_model(LoadedModel(info.version, f"{info.name}@{info.version}", model, scorer, time.time(),
                                 fast=fast["fast"], info=fast))  # fmt: skip
    assert engine.restore(snapshot) == len(expected["snapshot_entities"])
