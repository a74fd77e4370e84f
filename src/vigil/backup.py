"""Backup and restore of ``VIGIL_HOME``: what a new machine needs to carry on where this one stopped.

A backup is a folder ``vigil-backup-<UTC time>`` holding

- ``archive/``: the Parquet archive (files are written whole and renamed into place, so each copied
  file is complete; one that appears during the copy is in the next backup);
- ``mlflow/mlflow.db``: the embedded registry, copied with SQLite's online backup (consistent while
  a trainer writes), and ``mlflow/artifacts/``: the model bundles;
- ``models/``: models served from files, ``state/``: serving's stream snapshots, alert queue,
  incidents, maintenance, chat log and audit log; ``vigil.yml`` and the tokens (so the backup is as
  secret as the home: it is written 0700);
- ``manifest.json`` (written last): format, Vigil version, the home it came from, and the sha256 and
  size of every file.

It is written under ``.<name>.partial`` and renamed when complete, so an interrupted or failed
backup (a full disk) never looks like one. Not in it: logs, pid files, rendered configuration (made
again by ``vigil up``), downloaded datasets, validation work, the demo service's database and the
local Prometheus' TSDB (Prometheus' own snapshot API backs that up). With a remote MLflow
(``mlflow_tracking_uri``) the registry is that server's to back up, and the backup says so.

Restore verifies every hash before writing anything, refuses a backup of a newer format (naming the
version that made it) and a home that is not empty (unless forced), and moves the MLflow store's
file URIs to the new home when it differs from the old one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil import __version__
from vigil.config import Settings
from vigil.errors import ConfigError, DataError, VigilError

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
PREFIX = "vigil-backup-"
TREES = ("archive", "models", "state", "mlflow/artifacts")
FILES = ("vigil.yml", "api_token", "webhook_token", "api_read_token")
MLFLOW_DB = "mlflow/mlflow.db"
CHUNK = 1 << 20


class BackupError(VigilError, OSError):
    http_status = 500
    exit_code = 6


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class BackupResult:
    path: Path
    files: int
    bytes: int
    seconds: float
    removed: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "files": self.files, "bytes": self.bytes, "seconds": round(self.seconds, 2),
            "removed": [str(p) for p in self.removed], "notes": list(self.notes),
        }  # fmt: skip


def _home_files(home: Path) -> Iterator[tuple[str, Path]]:
    for tree in TREES:
        root = home / tree
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            # Dot-files are temporaries being written (renamed into place when whole).
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(home).parts):
                yield str(path.relative_to(home)), path
    for name in FILES:
        if (home / name).is_file():
            yield name, home / name


def _copy_sqlite(src: Path, dest: Path) -> None:
    """SQLite's online backup: a consistent copy while another process writes."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(dest)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()


def backup(
    settings: Settings, dest_dir: Path, *, keep: int = 0, progress: Callable[[str], None] | None = None
) -> BackupResult:
    """Snapshot ``settings.home`` into a new folder under ``dest_dir``; with ``keep`` > 0, remove all
    but the newest ``keep`` complete backups there afterwards."""
    started = time.monotonic()
    home = settings.home
    if not home.is_dir():
        raise ConfigError(f"{home}: no Vigil home to back up", hint="set VIGIL_HOME")
    dest_dir = Path(dest_dir)
    try:
        dest_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"{dest_dir}: cannot create the backup folder ({exc.strerror})") from None
    name = PREFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    final = dest_dir / name
    if final.exists():
        raise BackupError(f"{final}: a backup of this second exists already", hint="retry in a second")
    partial = dest_dir / f".{name}.partial"
    notes: list[str] = []
    files: dict[str, dict[str, Any]] = {}
    try:
        partial.mkdir(mode=0o700)
        db = home / MLFLOW_DB
        if settings.mlflow_tracking_uri:
            notes.append(f"the registry is {settings.mlflow_tracking_uri}: back it up with its server's own tools")
        elif db.is_file():
            (partial / "mlflow").mkdir(mode=0o700)
            _copy_sqlite(db, partial / MLFLOW_DB)
            files[MLFLOW_DB] = {}
        for rel, path in _home_files(home):
            target = partial / rel
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                shutil.copy2(path, target)
            except FileNotFoundError:  # removed since listed (an archive compaction): not ours to keep
                continue
            files[rel] = {}
            if progress is not None and len(files) % 200 == 0:
                progress(f"{len(files)} files")
        total = 0
        for rel in files:
            path = partial / rel
            files[rel] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}
            total += files[rel]["bytes"]
        manifest = {
            "format": FORMAT, "vigil_version": __version__, "created": time.time(), "home": str(home),
            "files": files, "notes": notes,
        }  # fmt: skip
        with (partial / MANIFEST).open("w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(partial, final)
    except (OSError, sqlite3.Error) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        reason = f"{exc.strerror} ({exc.filename})" if isinstance(exc, OSError) and exc.strerror else str(exc)
        hint = "nothing was left behind; free space or choose another target"
        raise BackupError(f"backup to {dest_dir} failed: {reason}", hint=hint) from None
    removed = _prune(dest_dir, keep) if keep > 0 else ()
    return BackupResult(final, len(files), total, time.monotonic() - started, removed, tuple(notes))


def _prune(dest_dir: Path, keep: int) -> tuple[Path, ...]:
    complete = sorted(p for p in dest_dir.glob(PREFIX + "*") if (p / MANIFEST).is_file())
    old = complete[:-keep]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return tuple(old)


def read_manifest(backup_dir: Path) -> dict[str, Any]:
    """The manifest, after checking every file against it; :class:`DataError` naming the file."""
    backup_dir = Path(backup_dir)
    manifest_file = backup_dir / MANIFEST
    if not manifest_file.is_file():
        raise DataError(f"{manifest_file}: missing; not a complete Vigil backup")
    try:
        manifest = json.loads(manifest_file.read_text())
        files: dict[str, dict[str, Any]] = dict(manifest["files"])
        fmt = int(manifest["format"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{manifest_file}: unreadable ({exc})") from None
    if fmt > FORMAT:
        raise DataError(
            f"{backup_dir}: made by Vigil {manifest.get('vigil_version', '?')} (backup format {fmt}); "
            f"this Vigil {__version__} reads format {FORMAT} and older",
            hint="restore it with that version or a newer one",
        )
    for rel, meta in files.items():
        path = backup_dir / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise DataError(f"{manifest_file}: a file outside the backup ({rel!r})")
        if not path.is_file():
            raise DataError(f"{path}: listed in the manifest but missing")
        if path.stat().st_size != meta.get("bytes") or sha256_of(path) != meta.get("sha256"):
            raise DataError(f"{path}: sha256 does not match the manifest (changed or truncated)")
    return manifest


def restore(backup_dir: Path, home: Path, *, force: bool = False) -> dict[str, Any]:
    """Restore a verified backup into ``home`` (empty or missing, unless ``force``)."""
    backup_dir, home = Path(backup_dir), Path(home)
    manifest = read_manifest(backup_dir)
    if home.exists() and any(home.iterdir()) and not force:
        raise ConfigError(f"{home}: not empty", hint="restore into an empty folder, or pass --force to overwrite")
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=home))
    try:
        for rel in manifest["files"]:
            target = staging / rel
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copy2(backup_dir / rel, target)
        moved = sorted({Path(rel).parts[0] for rel in manifest["files"]})
        for top in moved:
            final = home / top
            if final.is_dir():
                shutil.rmtree(final)
            elif final.exists():
                final.unlink()
            os.rename(staging / top, final)
    except OSError as exc:
        raise BackupError(f"restore into {home} failed: {exc}", hint="the backup is unchanged; retry") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    old_home = str(manifest.get("home", ""))
    rewritten = 0
    if old_home and old_home != str(home) and (home / MLFLOW_DB).is_file():
        rewritten = _move_mlflow_uris(home / MLFLOW_DB, Path(old_home), home)
    return {"home": str(home), "files": len(manifest["files"]), "from": str(backup_dir),
            "vigil_version": manifest.get("vigil_version"), "mlflow_uris_moved": rewritten}  # fmt: skip


# Where MLflow's SQLite store keeps absolute artifact locations (file URIs under the home).
_URI_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"), ("model_versions", "source"),
                ("model_versions", "storage_location"), ("logged_models", "artifact_location"))  # fmt: skip


def _move_mlflow_uris(db: Path, old_home: Path, new_home: Path) -> int:
    old, new = (old_home / "mlflow").as_uri(), (new_home / "mlflow").as_uri()
    changed = 0
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, column in _URI_COLUMNS:
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")} if table in tables else set()
            if column in columns:
                cur = conn.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE substr({column}, 1, ?) = ?",
                    (new, len(old) + 1, len(old), old),
                )
                changed += cur.rowcount
    return changed
