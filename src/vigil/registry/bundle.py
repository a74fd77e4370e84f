"""A model bundle: one folder holding everything a registered version needs, plus a SHA-256 manifest.

Layout::

    MANIFEST.json           format, model class, sha256 of every other file (written last)
    model/                  whatever ``ScoringModel.save(path)`` wrote
    card.json               the model card (features, training window, data hash, versions, ...)
    drift_reference.json    vigil.drift reference statistics (optional)
    golden.npz              a few training rows and their scores at registration (optional)
    training.json           parameters, metrics and per-fold results of the training run

Why not MLflow's sklearn flavour: MLflow 3 loads scikit-learn models through skops, which refuses
types it was not told to trust (``sklearn.tree._tree.Tree``) and would need a trust list that
grows with every detector. Hashing the bytes we wrote is simpler and catches what matters here: a
truncated upload, a half-written download, a bit flip, a file swapped by hand. The manifest is
written last, so a bundle interrupted while being written has no manifest and never loads; the
registry also records the manifest's own hash on the model version, so the manifest cannot be
edited to match tampered files either.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.contracts import ScoringModel
from vigil.errors import ModelError
from vigil.statefile import READ, REFUSE, FormatCheck

FORMAT = "vigil-bundle/1"
MANIFEST = "MANIFEST.json"
GOLDEN = "golden.npz"
# Only classes inside Vigil may be named by a manifest: a bundle is data, and data must not choose
# arbitrary code to import.


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def class_path(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def write_bundle(
    dest: Path,
    model: ScoringModel,
    *,
    card: Mapping[str, Any],
    training: Mapping[str, Any],
    drift_reference: Mapping[str, Any] | None = None,
    golden: pd.DataFrame | None = None,
) -> str:
    """Write a bundle into the empty or absent folder ``dest``; returns the manifest's sha256.

    ``golden``: a few training rows; their scores are stored too, and loading checks the model
    still produces them (see :func:`check_golden`).
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise ModelError(f"bundle folder {dest} is not empty")
    (dest / "model").mkdir(parents=True, exist_ok=True)
    model.save(dest / "model")
    _write_json(dest / "card.json", card)
    _write_json(dest / "training.json", training)
    if drift_reference is not None:
        _write_json(dest / "drift_reference.json", drift_reference)
    if golden is not None:
        _write_golden(dest / GOLDEN, golden, model.score_frame(golden)["score"].to_numpy(dtype=np.float64))
    files = {p.relative_to(dest).as_posix(): sha256_file(p) for p in sorted(dest.rglob("*")) if p.is_file()}
    manifest = {"format": FORMAT, "model_class": class_path(model), "files": files}
    _write_json(dest / MANIFEST, manifest)
    return sha256_file(dest / MANIFEST)


def verify_bundle(path: Path, *, manifest_sha256: str | None = None) -> dict[str, Any]:
    """Check every byte of a bundle; returns its manifest or raises :class:`ModelError` saying what is wrong."""
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise ModelError(
            f"model bundle {path} has no {MANIFEST}: it was not completely written",
            hint="retrain, or promote another version",
        )
    if manifest_sha256 is not None and sha256_file(mpath) != manifest_sha256:
        raise ModelError(f"model bundle {path}: {MANIFEST} does not match the hash recorded at registration")
    try:
        manifest = json.loads(mpath.read_text())
        files: dict[str, str] = manifest["files"]
        fmt = manifest["format"]
    except (ValueError, KeyError, TypeError):
        raise ModelError(f"model bundle {path}: {MANIFEST} is unreadable") from None
    if fmt != FORMAT:
        raise ModelError(f"model bundle {path} has format {fmt!r}; this Vigil reads {FORMAT!r}")
    for rel, expected in files.items():
        fpath = path / rel
        if not fpath.is_file():
            raise ModelError(f"model bundle {path} is missing {rel}", hint="the artifact is incomplete")
        if sha256_file(fpath) != expected:
            raise ModelError(f"model bundle {path}: {rel} is corrupted (sha256 mismatch)")
    present = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()} - {MANIFEST}
    extra = sorted(present - set(files))
    if extra:
        raise ModelError(f"model bundle {path} holds files not in its manifest: {', '.join(extra[:3])}")
    return manifest


def load_bundle(path: Path, *, manifest_sha256: str | None = None) -> ScoringModel:
    """Verify, then load the model; any failure is a :class:`ModelError` (never a half-loaded model)."""
    manifest = verify_bundle(path, manifest_sha256=manifest_sha256)
    cls = _model_class(manifest.get("model_class", ""))
    try:
        model = cls.load(Path(path) / "model")
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure means "this model cannot serve"
        raise ModelError(f"model bundle {path} failed to load: {type(exc).__name__}: {exc}") from exc
    check_golden(path, model)
    return model


def check_golden(path: Path, model: ScoringModel) -> None:
    """Score the bundle's golden rows and compare with the scores recorded at registration.

    Intact bytes are not enough: a pickled model can load under newer code and then fail or score
    differently (an attribute renamed in a detector, a changed default). Serving such a model
    would page people on the wrong basis, so a mismatch is a :class:`ModelError` at load time.
    """
    file = Path(path) / GOLDEN
    if not file.is_file():
        return
    frame, expected = _read_golden(file)
    try:
        got = model.score_frame(frame)["score"].to_numpy(dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - whatever breaks, the model cannot serve
        raise ModelError(
            f"model bundle {path} loads but cannot score its golden rows: {type(exc).__name__}: {exc}",
            hint="the code changed since it was trained; retrain it",
        ) from exc
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-6, atol=1e-9, equal_nan=True):
        worst = float(np.nanmax(np.abs(got - expected))) if got.shape == expected.shape else float("nan")
        raise ModelError(
            f"model bundle {path} scores its golden rows differently than at registration (max diff {worst:.3g})",
            hint="the code changed since it was trained; retrain it",
        )


def _write_golden(path: Path, frame: pd.DataFrame, scores: np.ndarray) -> None:
    index = frame.index
    is_time = isinstance(index, pd.DatetimeIndex)
    ticks = index.as_unit("ns").asi8 if is_time else np.asarray(index, dtype=np.int64)
    with path.open("wb") as fh:  # np.savez on a handle: no ".npz" appended, no pickled objects
        np.savez(
            fh,
            values=frame.to_numpy(dtype=np.float64),
            columns=np.asarray([str(c) for c in frame.columns]),
            index=ticks,
            is_time=np.asarray(is_time),
            tz=np.asarray(str(index.tz) if is_time and index.tz is not None else ""),
            scores=scores,
        )


def _read_golden(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if bool(data["is_time"]):
                index: pd.Index = pd.DatetimeIndex(pd.to_datetime(data["index"], unit="ns"))
                tz = str(data["tz"])
                if tz:
                    index = index.tz_localize("UTC").tz_convert(tz)
            else:
                index = pd.Index(data["index"])
            frame = pd.DataFrame(data["values"], index=index, columns=[str(c) for c in data["columns"]])
            return frame, np.asarray(data["scores"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"golden rows {path} are unreadable: {exc}") from exc


def read_json(path: Path, name: str) -> dict[str, Any]:
    file = Path(path) / name
    if not file.is_file():
        return {}
    return json.loads(file.read_text())


def copy_tree_atomic(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` through a sibling temp folder and one rename."""
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    os.replace(tmp, dest)


def _model_class(spec: str) -> Any:
    # A manifest is data, and data must not choose which code runs: only the model classes this Vigil
    # ships are loadable. Imported here because the pipeline pulls in PyTorch.
    from vigil.detectors.pipeline import AnomalyPipeline

    loadable = {f"{cls.__module__}:{cls.__qualname__}": cls for cls in (AnomalyPipeline,)}
    if spec not in loadable:
        raise ModelError(f"model bundle names class {spec!r}; only vigil's own model classes load: {sorted(loadable)}")
    return loadable[spec]


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


def check_bundle(path: Path) -> FormatCheck:
    """What this version does with the model bundle at ``path`` (``vigil upgrade-check``): every byte verified."""
    try:
        found = str(json.loads((path / MANIFEST).read_text()).get("format"))
    except (OSError, ValueError, AttributeError):
        found = "unreadable"
    try:
        verify_bundle(path)
    except ModelError as exc:
        return FormatCheck("model bundle", path, found, REFUSE, f"{exc}. Retrain, or promote another version.")
    return FormatCheck("model bundle", path, found, READ)
