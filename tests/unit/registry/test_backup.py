"""`vigil backup` / `vigil restore` on a real home: a real MLflow store with two versions of a model
fitted on SMD, an archive of real SMD rows, serving state and settings. The restored home, somewhere
else and with the original deleted, lists the same versions and aliases, scores the same rows
identically and holds the same archived samples. The live-stack version (backed up while it runs)
is in tests/integration/training/test_live_training.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import unavailable
from tests.unit.registry.support import smd_slice
from vigil.backup import FORMAT, MANIFEST, PREFIX, backup, read_manifest, restore
from vigil.config import load_settings
from vigil.errors import ConfigError, DataError, VigilError
from vigil.ingest.archive import Archive
from vigil.prometheus import RangeSeries
from vigil.registry import ModelRegistry

ENTITY = "machine-1-3"


def _home(registry: ModelRegistry, fitted_model: object) -> Path:
    home = registry.settings.home
    for f1 in (0.5, 0.6):
        registry.log_model(ENTITY, fitted_model, params={"seed": 0}, metrics={"holdout_event_f1": f1},  # type: ignore[arg-type]
                           fold_metrics=[], data_hash="d" * 64)  # fmt: skip
    registry.promote(ENTITY, 1)
    registry.promote(ENTITY, 2)
    registry.set_challenger(ENTITY, 1)
    rows = smd_slice(ENTITY, "test", 120)
    ts = 1_700_000_000.0 + np.arange(len(rows)) * 10.0  # within one UTC hour, as the archive files are
    series = [RangeSeries({"__name__": c, "instance": ENTITY, "job": "smd"}, ts, rows[c].to_numpy(dtype=float))
              for c in rows.columns[:5]]  # fmt: skip
    Archive(home / "archive").write_window(series, int(ts[0] * 1000), int(ts[-1] * 1000) + 1)
    (home / "state").mkdir(exist_ok=True)
    (home / "state" / "incidents.json").write_text('{"incidents": []}')
    (home / "vigil.yml").write_text("scrape_interval_s: 60\n")
    return home


def _view(home: Path) -> tuple[list[tuple[str, tuple[str, ...]]], np.ndarray, int]:
    registry = ModelRegistry(load_settings(home=home))
    versions = [(v.version, v.aliases) for v in registry.list_versions(ENTITY)]
    _info, model = registry.load(ENTITY)
    scores = model.score_frame(smd_slice(ENTITY, "test", 300)).to_numpy()  # type: ignore[attr-defined]
    return versions, scores, Archive(home / "archive").stats().samples


def test_a_restored_home_serves_the_same_models_and_data(registry: ModelRegistry, fitted_model: object,
                                                         tmp_path: Path) -> None:  # fmt: skip
    home = _home(registry, fitted_model)
    before = _view(home)
    done = backup(registry.settings, tmp_path / "backups")
    assert done.path.name.startswith(PREFIX) and done.files >= 5
    manifest = read_manifest(done.path)
    assert manifest["format"] == FORMAT and manifest["home"] == str(home) and "mlflow/mlflow.db" in manifest["files"]
    assert (done.path / "vigil.yml").read_text() == "scrape_interval_s: 60\n"
    assert not (done.path / "logs").exists()

    shutil.rmtree(home)  # the machine is gone; the restore must not lean on anything it held
    target = tmp_path / "elsewhere" / "home"
    restored = restore(done.path, target)
    assert restored["mlflow_uris_moved"] >= 3
    after = _view(target)
    assert after[0] == before[0] and after[0][-1][1] == ("champion",)
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2] == before[2] > 0

    with pytest.raises(ConfigError, match="not empty"):
        restore(done.path, target)
    assert restore(done.path, target, force=True)["files"] == done.files


def test_damaged_or_newer_backups_are_refused_naming_why(registry: ModelRegistry, fitted_model: object,
                                                         tmp_path: Path) -> None:  # fmt: skip
    _home(registry, fitted_model)
    done = backup(registry.settings, tmp_path / "backups")
    damaged = tmp_path / "damaged"
    shutil.copytree(done.path, damaged)
    victim = next(p for p in sorted(damaged.rglob("*.parquet")))
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(DataError, match=str(victim)):
        restore(damaged, tmp_path / "new-home")
    assert not (tmp_path / "new-home").exists(), "nothing is written before every file is verified"

    newer = tmp_path / "newer"
    shutil.copytree(done.path, newer)
    manifest = json.loads((newer / MANIFEST).read_text())
    (newer / MANIFEST).write_text(json.dumps({**manifest, "format": FORMAT + 1, "vigil_version": "9.0.0"}))
    with pytest.raises(DataError, match="made by Vigil 9.0.0"):
        restore(newer, tmp_path / "new-home")

    (damaged / MANIFEST).unlink()
    with pytest.raises(DataError, match="not a complete Vigil backup"):
        read_manifest(damaged)


def test_a_full_disk_leaves_no_backup_that_looks_complete(registry: ModelRegistry, fitted_model: object,
                                                          tmp_path: Path) -> None:  # fmt: skip
    if os.geteuid() != 0:
        unavailable("mounting a small tmpfs needs root")
    _home(registry, fitted_model)
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    try:
        with pytest.raises(VigilError, match="No space left|disk is full"):
            backup(registry.settings, small / "backups")
        assert list((small / "backups").iterdir()) == [], "a failed backup must leave nothing behind"
        subprocess.run(["mount", "-o", "remount,ro", str(small)], check=True)
        with pytest.raises(VigilError, match="Read-only file system"):
            backup(registry.settings, small / "backups")
        assert list((small / "backups").iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)
