"""The registry as the serving process's model source (``vigil.contracts.ModelSource``).

``vigil serve`` follows each registered model's ``champion`` alias (or, with the setting
``serving_model``, one model's). The fingerprint of a champion is ``name:version:manifest-sha256``,
which changes exactly when the alias moves to different bytes; :class:`ListedChampions` reads every
model's alias and mode in one query per poll.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from vigil.config import Settings, load_settings
from vigil.contracts import ModelRef, ScoringModel
from vigil.errors import ModelError, NotFound
from vigil.registry.store import CHAMPION, TAG_MANIFEST, ChampionEntry, ModelRegistry

log = logging.getLogger(__name__)


class ListedChampions:
    """Every Vigil model's champion as one registry query found it, refreshed once per reload cycle.

    Polling each model's alias, version and mode took three queries a model every few seconds (8 % of
    `vigil serve`'s time with 22 models in a soak). A version's run, source and manifest never change,
    so they are read once; the key holds the registered model's creation time, since a name deleted and
    registered again starts over at version 1.
    """

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.entries: dict[str, ChampionEntry] = {}
        self._refs: dict[tuple[str, int, str], ModelRef] = {}

    def refresh(self) -> list[str]:
        entries = self.registry.champions()
        live = {(name, e.created, e.version) for name, e in entries.items()}
        self._refs = {key: ref for key, ref in self._refs.items() if key in live}
        self.entries = entries
        return sorted(entries)

    def champion(self, name: str, make_ref: Callable[[str, str], ModelRef]) -> ModelRef | None:
        entry = self.entries.get(name)
        if entry is None or entry.version is None:
            return None
        key = (name, entry.created, entry.version)
        ref = self._refs.get(key)
        if ref is None:
            ref = self._refs[key] = make_ref(entry.version, entry.mode)
        return replace(ref, extra={**ref.extra, "mode": entry.mode})


class RegistryModelSource:
    def __init__(self, registry: ModelRegistry, name: str = "", listed: ListedChampions | None = None) -> None:
        self.registry = registry
        self._name = name
        self._listed = listed

    @property
    def name(self) -> str | None:
        if self._name:
            return self._name
        names = self.registry.entities()
        if not names:
            return None
        if len(names) > 1:
            log.warning("several models registered (%s); serving %s — set serving_model to choose", names, names[0])
        return names[0]

    def _ref(self, version: str, mode: str | None = None) -> ModelRef:
        name = self.name
        if name is None:
            raise NotFound("no model is registered", hint="run `vigil train`")
        mv = self.registry.client.get_model_version(name, version)
        sha = mv.tags.get(TAG_MANIFEST, "")
        return ModelRef(
            version=str(mv.version),
            fingerprint=f"{name}:{mv.version}:{sha}",
            location=f"models:/{name}@{CHAMPION}",
            extra={
                "name": name,
                "run_id": mv.run_id or "",
                "source": mv.source or "",
                "mode": mode if mode is not None else self.registry.mode(name),
            },
        )

    def champion(self) -> ModelRef | None:
        from mlflow.exceptions import MlflowException

        name = self.name
        if name is None:
            return None
        try:
            if self._listed is not None:
                return self._listed.champion(name, self._ref)
            version = self.registry.champion_version(name)
            return None if version is None else self._ref(version)
        except MlflowException:  # deleted between listing and reading (an operator, `vigil soak` ending)
            return None

    def load(self, ref: ModelRef) -> ScoringModel:
        name = ref.extra.get("name") or self.name
        if not name:
            raise ModelError("no registered model to load")
        return self.registry.load(name, ref.version)[1]

    def drift_reference(self, ref: ModelRef) -> dict[str, Any]:
        """The version's ``drift_reference.json`` ({} if it has none), for
        ``DriftMonitor(DriftReference.from_dict(...))`` next to the loaded model."""
        name = ref.extra.get("name") or self.name
        if not name:
            return {}
        return self.registry.bundle_json(name, ref.version, "drift_reference.json")

    def versions(self) -> list[ModelRef]:
        name = self.name
        if name is None:
            return []
        return [self._ref(v.version) for v in self.registry.list_versions(name)]

    def promote(self, version: str) -> ModelRef:
        name = self.name
        if name is None:
            raise NotFound("no model is registered", hint="run `vigil train`")
        self.registry.promote(name, version)
        return self._ref(version)


def model_source(settings: Settings | None = None) -> RegistryModelSource:
    """The registry source ``vigil serve`` follows (``vigil.detection.model_source.ChampionSources``)."""
    settings = settings or load_settings()
    return RegistryModelSource(ModelRegistry(settings), settings.serving_model)
