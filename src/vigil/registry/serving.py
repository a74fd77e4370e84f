"""The registry as the serving process's model source (``vigil.contracts.ModelSource``).

``vigil serve`` follows one registered model's ``champion`` alias (setting ``serving_model``;
empty: the only Vigil model in the registry, or the first by name when there are several). The
fingerprint it polls is ``name:version:manifest-sha256``: one indexed query, and it changes exactly
when the alias moves to different bytes.
"""

from __future__ import annotations

import logging
from typing import Any

from vigil.config import Settings, load_settings
from vigil.contracts import ModelRef, ScoringModel
from vigil.errors import ModelError, NotFound
from vigil.registry.store import CHAMPION, TAG_MANIFEST, ModelRegistry

log = logging.getLogger(__name__)


class RegistryModelSource:
    def __init__(self, registry: ModelRegistry, name: str = "") -> None:
        self.registry = registry
        self._name = name

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

    def _ref(self, version: str) -> ModelRef:
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
                "mode": self.registry.mode(name),
            },
        )

    def champion(self) -> ModelRef | None:
        from mlflow.exceptions import MlflowException

        name = self.name
        if name is None:
            return None
        version = self.registry.champion_version(name)
        try:
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
