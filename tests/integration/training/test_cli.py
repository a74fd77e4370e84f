"""`vigil train` / `vigil models` / `vigil drift` end to end: real SMD slices, real embedded MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.unit.registry.support import SMD_SLICE
from vigil.cli.main import app
from vigil.errors import ConfigError, NotFound

pytestmark = pytest.mark.integration

# --nice 0: in-process, the command's own nice would lower the priority of the test worker itself.
FAST = ["--folds", "2", "--gap", "30", "--detectors", "iforest,pca,ocsvm", "--param", "cross_fit=false", "--nice", "0"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vigil-home")


@pytest.fixture(scope="module")
def vigil(home: Path) -> Any:
    runner = CliRunner()
    env = {"VIGIL_HOME": str(home), "VIGIL_CONFIG": ""}

    def run(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(app, list(args), env=env)
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    return run


@pytest.fixture(scope="module")
def trained(vigil: Any) -> list[dict[str, Any]]:
    result = vigil("train", "--dataset", "smd", "--data-dir", str(SMD_SLICE), *FAST, "--json")
    return json.loads(result.stdout)


def test_train_registers_one_version_per_machine(trained: list[dict[str, Any]], home: Path) -> None:
    assert [(r["name"], r["version"], r["promoted"]) for r in trained] == [
        ("machine-1-3", "1", True),
        ("machine-1-4", "1", True),
    ]
    for r in trained:
        assert len(r["folds"]) == 2 and r["metrics"]["holdout_events"] == 1.0
        assert len(r["data_hash"]) == 64
    assert (home / "mlflow" / "mlflow.db").is_file()


def test_models_list_json_shows_versions_with_metrics(trained: list[dict[str, Any]], vigil: Any) -> None:
    listed = json.loads(vigil("models", "list", "--json").stdout)
    assert [(v["name"], v["version"], v["aliases"]) for v in listed] == [
        ("machine-1-3", "1", ["challenger", "champion"]),  # challenger: the latest candidate
        ("machine-1-4", "1", ["challenger", "champion"]),
    ]
    for v in listed:
        for key in ("holdout_event_f1", "holdout_auc_pr", "cv_alert_rate", "cv_calibration_drift"):
            assert key in v["metrics"]
        assert v["params"]["seed"] == "0" and v["data_hash"]
    table = vigil("models", "list").stdout
    assert "machine-1-3" in table and "champion" in table


def test_compare_promote_rollback(trained: list[dict[str, Any]], vigil: Any) -> None:
    second = json.loads(
        vigil(
            "train",
            "--dataset",
            "smd",
            "--data-dir",
            str(SMD_SLICE),
            "-e",
            "machine-1-3",
            "--seed",
            "1",
            "--promote",
            "never",
            *FAST,
            "--json",
        ).stdout
    )[0]
    assert (second["version"], second["promoted"]) == ("2", False)

    compared = json.loads(vigil("models", "compare", "machine-1-3", "champion", "2", "--json").stdout)
    assert compared["a"]["version"] == "1" and compared["b"]["version"] == "2"
    rows = {r["metric"]: r for r in compared["metrics"]}
    assert rows["holdout_auc_pr"]["a"] is not None and rows["holdout_auc_pr"]["b"] is not None
    assert "machine-1-3 v1" in vigil("models", "compare", "machine-1-3:1", "machine-1-3:2").stdout

    moved = json.loads(vigil("models", "promote", "machine-1-3", "2", "--json").stdout)
    assert (moved["previous"], moved["current"]) == ("1", "2")
    shown = json.loads(vigil("models", "show", "machine-1-3", "--json").stdout)
    assert shown["version"] == "2" and shown["aliases_now"]["champion"] == "2"
    assert shown["selection"]["policy"] == "never" and shown["features"]

    back = json.loads(vigil("models", "rollback", "machine-1-3", "--json").stdout)
    assert (back["previous"], back["current"]) == ("2", "1")
    assert "champion 2 -> 1" not in vigil("models", "list").stdout  # plain table, no move printed

    failed = vigil("models", "promote", "machine-1-3", "9", ok=False)
    assert isinstance(failed.exception, NotFound)

    assert shown["mode"] == "paging"
    held = json.loads(vigil("models", "mode", "machine-1-3", "shadow", "--json").stdout)
    assert (held["previous"], held["mode"]) == ("paging", "shadow")
    assert "mode: shadow" in vigil("models", "show", "machine-1-3").stdout
    assert isinstance(vigil("models", "mode", "machine-1-3", "muted", ok=False).exception, ConfigError)


def test_drift_command_on_dataset_rows(trained: list[dict[str, Any]], vigil: Any) -> None:
    report = json.loads(
        vigil(
            "drift", "--dataset", "smd", "--data-dir", str(SMD_SLICE), "--split", "test", "--rows", "0:1200", "--json"
        ).stdout
    )
    assert set(report) == {"machine-1-3", "machine-1-4"}
    for r in report.values():
        assert r["samples"] > 0 and set(r["features"]) and r["score_psi"] is not None
    text = vigil("drift", "--dataset", "smd", "--data-dir", str(SMD_SLICE), "-e", "machine-1-4").stdout
    assert text.startswith("machine-1-4 v1:")
