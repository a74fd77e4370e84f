"""MLflow-backed model registry (adapter): versioned, verified model bundles with aliases.

Serving's read-only surface::

    registry = ModelRegistry(settings)
    version, path = registry.champion("machine-1-2")     # verified local bundle
    model = load_bundle(path)                              # or registry.load(name)
    watcher = ChampionWatcher(registry, "machine-1-2", current=version)
    watcher.poll()                                         # (version, path) when the alias moved
"""

from vigil.registry.bundle import load_bundle, verify_bundle, write_bundle
from vigil.registry.store import (
    CHALLENGER,
    CHAMPION,
    AliasMove,
    ChampionWatcher,
    ModelRegistry,
    ModelVersionInfo,
    disable_telemetry,
    model_name,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "AliasMove",
    "ChampionWatcher",
    "ModelRegistry",
    "ModelVersionInfo",
    "disable_telemetry",
    "load_bundle",
    "model_name",
    "verify_bundle",
    "write_bundle",
]
