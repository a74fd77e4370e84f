"""Bundles: what is written verifies and loads; any damage is a clear ModelError, never a model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.registry.support import smd_slice
from vigil.errors import ModelError
from vigil.registry.bundle import MANIFEST, load_bundle, sha256_file, verify_bundle, write_bundle


@pytest.fixture
def bundle(tmp_path: Path, fitted_model: object) -> tuple[Path, str]:
    path = tmp_path / "bundle"
    sha = write_bundle(path, fitted_model, card=fitted_model.model_card(), training={"seed": 0})  # type: ignore[attr-defined]
    return path, sha


def test_written_bundle_verifies_and_scores_identically(bundle: tuple[Path, str], fitted_model: object) -> None:
    path, sha = bundle
    manifest = verify_bundle(path, manifest_sha256=sha)
    assert manifest["model_class"] == "vigil.detectors.pipeline:AnomalyPipeline"
    assert "card.json" in manifest["files"] and "training.json" in manifest["files"]
    loaded = load_bundle(path, manifest_sha256=sha)
    frame = smd_slice("machine-1-3", "test", 200)
    assert loaded.score_frame(frame).equals(fitted_model.score_frame(frame))  # type: ignore[attr-defined]


def _model_file(path: Path) -> Path:
    return max((p for p in (path / "model").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def test_flipped_byte_is_refused(bundle: tuple[Path, str]) -> None:
    path, sha = bundle
    target = _model_file(path)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="corrupted"):
        load_bundle(path, manifest_sha256=sha)


def test_truncated_file_is_refused(bundle: tuple[Path, str]) -> None:
    path, sha = bundle
    target = _model_file(path)
    target.write_bytes(target.read_bytes()[:100])
    with pytest.raises(ModelError, match="corrupted"):
        load_bundle(path, manifest_sha256=sha)


def test_half_written_bundle_without_manifest_is_refused(bundle: tuple[Path, str]) -> None:
    path, _ = bundle
    (path / MANIFEST).unlink()
    with pytest.raises(ModelError, match="not completely written"):
        load_bundle(path)


def test_missing_and_extra_files_are_refused(bundle: tuple[Path, str]) -> None:
    path, sha = bundle
    (path / "stray.pkl").write_bytes(b"not ours")
    with pytest.raises(ModelError, match="not in its manifest"):
        verify_bundle(path, manifest_sha256=sha)
    (path / "stray.pkl").unlink()
    (path / "card.json").unlink()
    with pytest.raises(ModelError, match="missing card.json"):
        verify_bundle(path, manifest_sha256=sha)


def test_manifest_rewritten_to_match_tampered_files_is_refused(bundle: tuple[Path, str]) -> None:
    path, sha = bundle
    (path / "training.json").write_text('{"seed": 1}\n')
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["files"]["training.json"] = sha256_file(path / "training.json")
    (path / MANIFEST).write_text(json.dumps(manifest))
    verify_bundle(path)  # self-consistent on its own...
    with pytest.raises(ModelError, match="hash recorded at registration"):
        verify_bundle(path, manifest_sha256=sha)  # ...but not what was registered


def test_manifest_may_not_name_code_outside_vigil(bundle: tuple[Path, str]) -> None:
    path, _ = bundle
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["model_class"] = "os:system"
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="only vigil.s own model classes"):
        load_bundle(path)


def test_model_that_no_longer_scores_its_golden_rows_is_refused(tmp_path: Path, fitted_model: object) -> None:
    from vigil.detectors.pipeline import AnomalyPipeline

    golden = smd_slice("machine-1-3", "train", 600).iloc[-240:]
    path = tmp_path / "bundle"
    write_bundle(path, fitted_model, card={}, training={}, golden=golden)  # type: ignore[arg-type]
    load_bundle(path)  # scores as recorded
    # Same bytes format, different behaviour: what a code change under a pickled model looks like.
    changed = AnomalyPipeline.load(path / "model")
    changed.center_ = changed.center_ + 1.0
    changed.save(path / "model")
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["files"] = {
        p.relative_to(path).as_posix(): sha256_file(p) for p in path.rglob("*") if p.is_file() and p.name != MANIFEST
    }
    (path / MANIFEST).write_text(json.dumps(manifest))
    verify_bundle(path)  # the bytes are consistent...
    with pytest.raises(ModelError, match="golden rows differently"):
        load_bundle(path)  # ...but the model does not score as it did
