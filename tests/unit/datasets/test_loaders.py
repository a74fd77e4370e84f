from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vigil.datasets import discover, list_entities, list_nab, load_dataset, load_nab, load_smd_like
from vigil.errors import DataError, NotFound

# Anomalous share of test rows and event count per entity, from ../shared/data/*/README.md.
README_STATS = {
    ("smd", "machine-1-2"): (0.0229, 10),
    ("smd", "machine-2-1"): (0.0494, 13),
    ("asd", "omi-1"): (0.1021, 7),
    ("asd", "omi-7"): (0.0201, 3),
}


@pytest.mark.parametrize(("dataset", "entity"), sorted(README_STATS))
def test_split_matches_readme_statistics(data_dir: Path, dataset: str, entity: str) -> None:
    split = load_dataset(dataset, entity, data_dir)
    share, events = README_STATS[(dataset, entity)]
    assert split.labels.dtype == np.int8
    assert len(split.labels) == len(split.test)
    assert split.labels.mean() == pytest.approx(share, abs=5e-5)
    assert len(split.interpretation) == events
    assert list(split.train.columns) == list(split.test.columns) == list(split.columns)
    assert not split.train.isna().any().any()


@pytest.mark.parametrize("dataset", ["smd", "asd"])
def test_interpretation_segments_match_label_runs(data_dir: Path, dataset: str) -> None:
    # The exclusive (SMD) / inclusive (ASD) end convention is right only if every segment is a run
    # of labelled rows with unlabelled (or other-segment) rows on both sides. Upstream SMD labels a
    # few events that have no interpretation line (machine-1-3, machine-3-2), so the segments may
    # cover fewer rows than test_label, never more.
    for entity in list_entities(dataset, data_dir):
        split = load_dataset(dataset, entity, data_dir)
        covered = np.zeros(len(split.labels), dtype=bool)
        for seg in split.interpretation:
            covered[seg.start : seg.end] = True
            assert all(0 <= d < split.test.shape[1] for d in seg.dims)
        edges_off = 0
        for seg in split.interpretation:
            assert split.labels[seg.start : seg.end].all(), f"{dataset}/{entity} {seg.start}-{seg.end}"
            if seg.start > 0 and not covered[seg.start - 1]:
                edges_off += int(split.labels[seg.start - 1])
            if seg.end < len(split.labels) and not covered[seg.end]:
                edges_off += int(split.labels[seg.end])
        # One upstream SMD segment (machine-1-3, 22923-23019) stops one row short of its label run;
        # the wrong end convention would put nearly every edge off instead.
        assert edges_off <= (1 if entity == "machine-1-3" else 0), entity
        assert covered.sum() >= 0.95 * split.labels.sum(), entity


def test_asd_segments_carry_anomaly_type(data_dir: Path) -> None:
    split = load_dataset("asd", "omi-1", data_dir)
    assert [s.kind for s in split.interpretation[:4]] == ["metric", "metric-temporal", "metric", "temporal"]
    assert (split.interpretation[0].start, split.interpretation[0].end) == (760, 766)


def test_step_spacing_from_folder_name(data_dir: Path) -> None:
    assert load_dataset("smd", "machine-1-3", data_dir).step_s == 60.0
    assert load_dataset("asd", "omi-2", data_dir).step_s == 300.0


def test_unknown_entity_names_the_known_ones(data_dir: Path) -> None:
    with pytest.raises(NotFound, match="machine-1-2"):
        load_smd_like(data_dir / "smd", "machine-9-9")


def test_label_count_mismatch_is_a_data_error(data_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "smd"
    for sub in ("train", "test", "test_label"):
        (root / sub).mkdir(parents=True)
        lines = (data_dir / "smd" / sub / "machine-1-2.txt").read_text().splitlines()[:50]
        if sub == "test_label":
            lines = lines[:49]
        (root / sub / "machine-1-2.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="49 test labels for 50 test rows"):
        load_smd_like(root, "machine-1-2")


def test_nab_windows_and_labels(data_dir: Path) -> None:
    series = load_nab(data_dir / "nab")
    assert len(series) == 24
    assert sum(len(s.windows) for s in series) == 49
    for s in series:
        # Rows stay in file order, as NAB's scorer reads them: machine_temperature jumps back an hour
        # once (2014-01-07 02:55 -> 02:00) and must not be re-sorted.
        lines = (data_dir / "nab" / "data" / s.name).read_text().splitlines()
        assert len(s.frame) == len(lines) - 1
        assert str(s.frame.index[-1]) == lines[-1].split(",")[0]
        assert list(s.frame.columns) == ["value"]
        assert len(s.labels) == len(s.frame)
        # NAB sizes all windows of a file to about 10% of its length; files without anomalies have none.
        assert (0.05 < s.labels.mean() < 0.15) if s.windows else s.labels.sum() == 0, s.name
    # Upstream NAB leaves one labelled point (iio_us-east-1 NetworkIn, 2013-10-10 09:35) outside its windows.
    outside = [(s.name, p) for s in series for p in s.anomaly_points if not any(a <= p <= b for a, b in s.windows)]
    assert len(outside) == 1 and "NetworkIn" in outside[0][0]
    server = load_nab(data_dir / "nab", server_only=True)
    assert len(server) == 19
    assert all(s.is_server_metric for s in server)


def test_nab_subset_and_unknown_name(data_dir: Path) -> None:
    name = "realKnownCause/ec2_request_latency_system_failure.csv"
    [only] = load_nab(data_dir / "nab", names=[name])
    assert only.name == name and only.group == "realKnownCause"
    with pytest.raises(NotFound):
        load_nab(data_dir / "nab", names=["realKnownCause/nope.csv"])


def test_nab_bad_json_is_a_data_error(data_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "nab"
    shutil.copytree(data_dir / "nab" / "data", root / "data")
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_nab(root)


def test_discover_prefers_first_root(data_dir: Path, tmp_path: Path) -> None:
    fetched = tmp_path / "datasets"
    nab = fetched / "nab"
    (nab / "data" / "realKnownCause").mkdir(parents=True)
    shutil.copy(data_dir / "nab" / "data" / "realKnownCause" / "nyc_taxi.csv", nab / "data" / "realKnownCause")
    (nab / "labels").mkdir()
    (nab / "labels" / "combined_windows.json").write_text(json.dumps({}))
    infos = {d.name: d for d in discover([data_dir, fetched])}
    assert set(infos) >= {"smd", "asd", "nab"}
    assert infos["nab"].path == data_dir / "nab"
    assert infos["smd"].format == "smd-like" and "machine-1-2" in infos["smd"].entities
    only_fetched = discover([tmp_path / "missing", fetched])
    assert [(d.name, d.entities) for d in only_fetched] == [("nab", ("realKnownCause/nyc_taxi.csv",))]
    assert list_nab(tmp_path) == []
