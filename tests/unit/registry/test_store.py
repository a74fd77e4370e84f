"""The MLflow-backed registry against a real embedded store (SQLite + local artifacts)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from vigil.errors import ModelError, NotFound
from vigil.registry import ChampionWatcher, ModelRegistry, model_name


def _log(registry: ModelRegistry, model: object, entity: str = "machine-1-3", f1: float = 0.5) -> str:
    info = registry.log_model(
        entity,
        model,  # type: ignore[arg-type]
        params={"seed": 0},
        metrics={"holdout_event_f1": f1},
        fold_metrics=[{"event_f1": f1 - 0.1}, {"event_f1": f1 + 0.1}],
        data_hash="d" * 64,
    )
    return info.version


def _corrupt_artifact(registry: ModelRegistry, name: str, version: str) -> None:
    source = Path(urlparse(registry.get(name, version).source).path)
    target = max((p for p in (source / "model").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    shutil.rmtree(registry.cache_dir / name / version, ignore_errors=True)


def test_telemetry_is_off() -> None:
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert os.environ["DO_NOT_TRACK"] == "true"
    from mlflow.telemetry.utils import is_telemetry_disabled

    assert is_telemetry_disabled()


def test_embedded_store_lives_under_vigil_home(registry: ModelRegistry, fitted_model: object) -> None:
    home = registry.settings.home
    assert registry.tracking_uri == f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    _log(registry, fitted_model)
    info = registry.get("machine-1-3", "1")
    assert urlparse(info.source).path.startswith(str(home / "mlflow" / "artifacts"))


def test_log_list_and_metrics(registry: ModelRegistry, fitted_model: object) -> None:
    assert _log(registry, fitted_model, f1=0.5) == "1"
    assert _log(registry, fitted_model, f1=0.7) == "2"
    versions = registry.list_versions()
    assert [(v.name, v.version) for v in versions] == [("machine-1-3", "1"), ("machine-1-3", "2")]
    assert versions[1].metrics["holdout_event_f1"] == pytest.approx(0.7)
    assert versions[0].data_hash == "d" * 64
    assert versions[0].params["seed"] == "0"
    card = registry.bundle_json("machine-1-3", "1", "card.json")
    assert card["feature_names"] == fitted_model.feature_names_  # type: ignore[attr-defined]
    assert card["data_hash"] and card["library_versions"]["scikit-learn"]
    # the run is visible to plain MLflow too (what `mlflow ui` shows)
    run = registry.client.get_run(versions[0].run_id)
    assert run.data.params["seed"] == "0" and run.info.status == "FINISHED"


def test_promote_rollback_and_history(registry: ModelRegistry, fitted_model: object) -> None:
    for _ in range(3):
        _log(registry, fitted_model)
    name = "machine-1-3"
    with pytest.raises(NotFound):
        registry.champion(name)
    assert registry.promote(name, 1).current == "1"
    move = registry.promote(name, 3)
    assert (move.previous, move.current) == ("1", "3")
    assert registry.champion_version(name) == "3"
    assert registry.champion_history(name) == ["1", "3"]
    version, path = registry.champion(name)
    assert version == "3" and (path / "MANIFEST.json").is_file()
    back = registry.rollback(name)
    assert (back.previous, back.current) == ("3", "1")
    assert registry.champion_version(name) == "1"
    with pytest.raises(NotFound, match="no earlier champion"):
        registry.rollback(name)
    registry.set_challenger(name, 2)
    assert registry.aliases(name) == {"champion": "1", "challenger": "2"}
    assert [v.aliases for v in registry.list_versions(name)] == [("champion",), ("challenger",), ()]


def test_corrupted_artifact_is_never_promoted_and_champion_stays(registry: ModelRegistry, fitted_model: object) -> None:
    name = "machine-1-3"
    _log(registry, fitted_model)
    _log(registry, fitted_model)
    registry.promote(name, 1)
    _corrupt_artifact(registry, name, "2")
    with pytest.raises(ModelError, match="corrupted"):
        registry.promote(name, 2)
    assert registry.champion_version(name) == "1"
    info, model = registry.load(name)
    assert info.version == "1" and model.threshold_ == fitted_model.threshold_  # type: ignore[attr-defined]


def test_corrupted_champion_fails_loudly_and_watcher_keeps_serving_side_informed(
    registry: ModelRegistry, fitted_model: object
) -> None:
    name = "machine-1-3"
    _log(registry, fitted_model)
    _log(registry, fitted_model)
    registry.promote(name, 1)
    watcher = ChampionWatcher(registry, name)
    assert watcher.poll() == ("1", registry.cache_dir / name / "1")
    assert watcher.poll() is None
    registry.promote(name, 2)
    # The artifact is damaged after promotion (disk fault, hand edit): loading must fail, clearly.
    _corrupt_artifact(registry, name, "2")
    with pytest.raises(ModelError, match="corrupted"):
        registry.load(name)
    with pytest.raises(ModelError):
        watcher.poll()
    assert watcher.poll() is None  # reported once; the server keeps the model it has
    assert watcher.current == "1"
    registry.rollback(name)
    assert registry.champion_version(name) == "1"
    assert watcher.poll() is None  # already serving 1


def test_damaged_cache_is_fetched_again(registry: ModelRegistry, fitted_model: object) -> None:
    name = "machine-1-3"
    _log(registry, fitted_model)
    path = registry.fetch(name, 1)
    (path / "card.json").write_text("{}")
    assert registry.fetch(name, 1) == path
    registry.load(name, 1)


def test_half_logged_run_registers_nothing(registry: ModelRegistry, fitted_model: object) -> None:
    class Unsavable:
        metric_names_ = fitted_model.metric_names_  # type: ignore[attr-defined]

        def model_card(self) -> dict[str, object]:
            return {}

        def save(self, path: Path) -> None:
            (Path(path) / "partial.bin").write_bytes(b"half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        registry.log_model("machine-1-3", Unsavable())  # type: ignore[arg-type]
    assert registry.list_versions() == []
    runs = registry.client.search_runs([registry._experiment()])
    assert runs == []  # the failed run was deleted, not left half-logged


def test_unknown_model_and_version(registry: ModelRegistry, fitted_model: object) -> None:
    with pytest.raises(NotFound):
        registry.get("nope", "1")
    _log(registry, fitted_model)
    with pytest.raises(NotFound):
        registry.get("machine-1-3", "7")
    with pytest.raises(NotFound):
        registry.promote("machine-1-3", 7)


def test_model_names_from_label_values() -> None:
    assert model_name("10.0.0.1:9100") == "10.0.0.1_9100"
    assert model_name("machine-1-2") == "machine-1-2"
    with pytest.raises(ModelError):
        model_name("///")


def test_processes_opening_a_new_store_together_all_succeed(tmp_path: Path) -> None:
    # `vigil train` and serving's poller may create the embedded store at the same moment; without
    # the init lock 3 of 4 such processes failed in MLflow's schema migration.
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from vigil.config import load_settings; "
        "from vigil.registry import ModelRegistry; "
        "print(ModelRegistry(load_settings(home=Path(sys.argv[1]))).client.search_registered_models())"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=120)[1].decode()[-300:] for p in procs]
    results = [(p.returncode, err) for p, err in zip(procs, errors, strict=True)]
    assert all(rc == 0 for rc, _ in results), results
