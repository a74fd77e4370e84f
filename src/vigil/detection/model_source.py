"""Where the serving process finds the champion model.

Serving never trains and never writes models; it resolves the *champion* and follows it. Two
sources implement the same small interface:

* :class:`FileModelSource`: ``$VIGIL_HOME/models``. The champion is the entry named in the file
  ``models/champion`` or, without it, the newest entry. An entry is whatever
  ``AnomalyPipeline.save`` wrote (a file or a folder).
* the MLflow registry (``vigil.registry.serving``), whose ``champion`` alias is the champion, opened
  by :class:`ChampionSources` once its store exists.

A source answers ``fingerprint()`` cheaply and often (the reloader polls it); only when it changes
is ``load()`` called, in a background thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.contracts import ModelRef, ModelSource, ScoringModel
from vigil.errors import ModelError, NotFound

if TYPE_CHECKING:
    from vigil.registry.serving import ListedChampions, RegistryModelSource

log = logging.getLogger(__name__)

CHAMPION_FILE = "champion"


def _pipeline_loader(path: Path) -> ScoringModel:
    from vigil.detectors.pipeline import AnomalyPipeline

    return AnomalyPipeline.load(path)


class FileModelSource:
    def __init__(self, models_dir: Path, loader: Callable[[Path], ScoringModel] = _pipeline_loader) -> None:
        self.models_dir = Path(models_dir)
        self._loader = loader

    def _entries(self) -> list[Path]:
        if not self.models_dir.is_dir():
            return []
        return [
            p
            for p in self.models_dir.iterdir()
            if p.name != CHAMPION_FILE and not p.name.startswith((".", "_")) and not p.name.endswith((".tmp", ".lock"))
        ]

    @staticmethod
    def _ref(path: Path) -> ModelRef:
        stat = path.stat()
        # A folder's own mtime misses in-place rewrites of its files, so fold in theirs.
        stamps = [stat.st_mtime_ns]
        if path.is_dir():
            stamps += [p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()]
        return ModelRef(version=path.name, fingerprint=f"{path.name}@{max(stamps)}", location=str(path))

    def versions(self) -> list[ModelRef]:
        refs = []
        for path in self._entries():
            try:
                refs.append(self._ref(path))
            except FileNotFoundError:  # deleted while listing
                continue
        return sorted(refs, key=lambda r: r.fingerprint.rsplit("@", 1)[1])

    def champion(self) -> ModelRef | None:
        pointer = self.models_dir / CHAMPION_FILE
        if pointer.is_file():
            name = pointer.read_text().strip()
            path = self.models_dir / name
            if name and "/" not in name and path.exists():
                return self._ref(path)
        refs = self.versions()
        return refs[-1] if refs else None

    def load(self, ref: ModelRef) -> ScoringModel:
        try:
            return self._loader(Path(ref.location))
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"cannot load model {ref.version}: {type(exc).__name__}: {exc}") from exc

    def promote(self, version: str) -> ModelRef:
        path = self.models_dir / version
        if "/" in version or version in ("", ".", "..") or not path.exists():
            raise NotFound(f"no model {version!r} in {self.models_dir}", hint="see GET /v1/models")
        # Write-then-rename so the reloader never reads a half-written pointer.
        tmp = self.models_dir / f".{CHAMPION_FILE}.tmp"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.models_dir / CHAMPION_FILE)
        return self._ref(path)


class ChampionSources:
    """The registry's champion when there is one, else the models folder's.

    The registry (MLflow) is opened only once its store exists (or a tracking URI is set), so a
    service started before the first training run picks it up later without a restart, and a
    plain ``AnomalyPipeline.save`` into ``$VIGIL_HOME/models`` keeps working without MLflow.
    """

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.files = FileModelSource(settings.models_dir)
        self._registry: RegistryModelSource | None = None
        self._listed: ListedChampions | None = None

    def registry(self) -> RegistryModelSource | None:
        if self._registry is not None:
            return self._registry
        uri = getattr(self.settings, "mlflow_tracking_uri", "")
        if not uri and not self.settings.mlflow_dir.exists():
            return None
        # Imported here: MLflow takes seconds to import, and a stack serving from the models folder never needs it.
        from vigil.registry.serving import model_source

        try:
            self._registry = model_source(self.settings)
        except Exception as exc:  # a broken store must not stop serving the folder's model; retried next poll
            log.warning("model registry unavailable, using %s: %s", self.settings.models_dir, exc)
        return self._registry

    def _registry_champion(self) -> ModelRef | None:
        registry = self.registry()
        if registry is None:
            return None
        try:
            ref = registry.champion()
        except Exception as exc:
            log.warning("cannot resolve the registry champion, using %s: %s", self.settings.models_dir, exc)
            return None
        if ref is None:
            return None
        return ModelRef(ref.version, f"registry:{ref.fingerprint}", ref.location, {**ref.extra, "source": "registry"})

    def champion(self) -> ModelRef | None:
        return self._registry_champion() or self.files.champion()

    def names(self) -> list[str] | None:
        """Registered model names (one per entity); empty while there is no registry or model in it,
        None when the registry cannot be read right now (nothing is known, so nothing may change)."""
        registry = self.registry()
        if registry is None:
            return []
        if self._listed is None:
            from vigil.registry.serving import ListedChampions

            self._listed = ListedChampions(registry.registry)
        try:
            return self._listed.refresh()
        except Exception as exc:
            log.warning("cannot list registered models: %s", exc)
            return None

    def for_name(self, name: str) -> ModelSource:
        """The registry source that follows one registered model's champion."""
        registry = self.registry()
        if registry is None:
            raise ModelError("the model registry is not available")
        from vigil.registry.serving import RegistryModelSource

        return _Tagged(RegistryModelSource(registry.registry, name, self._listed))

    def load(self, ref: ModelRef) -> ScoringModel:
        if ref.extra.get("source") == "registry":
            registry = self.registry()
            if registry is None:
                raise ModelError("the model registry is no longer available")
            return registry.load(ref)
        return self.files.load(ref)

    def versions(self) -> list[ModelRef]:
        registry = self.registry()
        return (registry.versions() if registry is not None else []) + self.files.versions()

    def promote(self, version: str) -> ModelRef:
        registry = self.registry()
        if registry is not None:
            try:
                return registry.promote(version)
            except NotFound:
                pass
        return self.files.promote(version)


class _Tagged:
    """A registry source whose refs say where they came from (as ``ChampionSources`` marks them)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def champion(self) -> ModelRef | None:
        ref = self.inner.champion()
        if ref is None:
            return None
        return ModelRef(ref.version, f"registry:{ref.fingerprint}", ref.location, {**ref.extra, "source": "registry"})

    def load(self, ref: ModelRef) -> ScoringModel:
        return self.inner.load(ref)

    def versions(self) -> list[ModelRef]:
        return list(self.inner.versions())

    def promote(self, version: str) -> ModelRef:
        return self.inner.promote(version)


def default_source(settings: Any) -> ModelSource:
    """The champion of the MLflow registry once it exists, else of ``$VIGIL_HOME/models``."""
    return ChampionSources(settings)
