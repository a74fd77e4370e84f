"""``vigil bench`` end to end on the real slices in tests/data (SMD, ASD and NAB formats)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from vigil.cli.main import app

DATA = Path(__file__).resolve().parents[2] / "data"


ALL = ["iforest", "lof", "ocsvm", "autoencoder", "pca"]


@pytest.mark.parametrize(
    ("dataset", "entity", "rows", "detectors"),
    [("smd", "machine-1-2", 1800, ["iforest", "pca"]), ("asd", "omi-1", 800, ALL)],
)
def test_bench_writes_one_row_per_test_row_and_a_summary(
    dataset: str, entity: str, rows: int, detectors: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["bench", "--dataset", dataset, "--data-dir", str(DATA), "--out", str(out), "--jobs", "1"]
    result = CliRunner().invoke(app, [*args, "--detectors", ",".join(detectors)])
    assert result.exit_code == 0, result.output
    csv = pd.read_csv(out / f"{entity}.csv")
    assert list(csv.columns) == ["score", "alert"] and len(csv) == rows
    assert csv["score"].between(0, 1).all() and set(csv["alert"].unique()) <= {0, 1}
    summary = json.loads((out / "summary.json").read_text())
    methods = {"ensemble", "pca_baseline", *detectors}
    assert set(summary["macro"]) == methods
    ent = summary["entities"][entity]["metrics"]
    for m in methods:
        assert {"auc_pr", "point_f1", "event_f1", "event_precision", "false_runs_per_1k", "mean_delay"} <= set(ent[m])
    # The CSV is the ensemble: its alerts are the ones the summary evaluated.
    assert ent["ensemble"]["alert_runs"] == int((csv["alert"].diff().fillna(csv["alert"]) == 1).sum())
    assert ent["ensemble"]["auc_pr"] > 0.2  # three / two labelled incidents; far above the base rate


def test_bench_nab_writes_every_series_row(tmp_path: Path) -> None:
    out = tmp_path / "nab"
    result = CliRunner().invoke(
        app,
        ["bench", "--dataset", "nab", "--data-dir", str(DATA), "--out", str(out), "--detectors", "iforest,pca"],
    )
    assert result.exit_code == 0, result.output
    name = "realAWSCloudwatch__iio_us-east-1_i-a2eb1cd9_NetworkIn.csv"
    csv = pd.read_csv(out / name)
    series = pd.read_csv(DATA / "nab" / "data" / "realAWSCloudwatch" / "iio_us-east-1_i-a2eb1cd9_NetworkIn.csv")
    assert len(csv) == len(series)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["macro"]) == {"ensemble", "iforest", "pca", "pca_baseline"}


def test_unknown_dataset_is_a_clean_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "--dataset", "kdd", "--data-dir", str(DATA), "--out", str(tmp_path)])
    assert result.exit_code != 0


def test_nab_rows_with_repeated_timestamps_stay_in_order(data_dir: Path) -> None:
    from vigil.cli.bench import load_entity

    root = data_dir / "nab"
    ent = load_entity("nab", root, "realAWSCloudwatch/ec2_network_in_5abac7.csv")
    raw = pd.read_csv(root / "data" / "realAWSCloudwatch" / "ec2_network_in_5abac7.csv")
    assert len(ent.frame) == len(raw) and ent.frame.index.is_monotonic_increasing
    assert not ent.frame.index.has_duplicates
    assert ent.frame["value"].tolist() == raw["value"].tolist()
    assert len(ent.labels) == len(raw) - ent.n_train
