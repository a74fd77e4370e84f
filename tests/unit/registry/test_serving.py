"""The registry seen through serving's ModelSource interface."""

from __future__ import annotations

import pytest

from tests.unit.registry.test_store import _corrupt_artifact, _log
from vigil.errors import ModelError
from vigil.registry import ModelRegistry
from vigil.registry.serving import RegistryModelSource


def test_champion_fingerprint_follows_the_alias(registry: ModelRegistry, fitted_model: object) -> None:
    source = RegistryModelSource(registry)
    assert source.champion() is None and source.versions() == []
    _log(registry, fitted_model)
    _log(registry, fitted_model)
    assert source.champion() is None  # registered, not yet promoted: nothing to serve
    registry.promote("machine-1-3", 1)
    first = source.champion()
    assert first.version == "1" and first.fingerprint.startswith("machine-1-3:1:")
    assert source.champion().fingerprint == first.fingerprint  # stable while nothing moves
    assert source.drift_reference(first) == {}  # registered without one
    model = source.load(first)
    assert model.threshold_ == fitted_model.threshold_  # type: ignore[attr-defined]
    moved = source.promote("2")
    assert moved.version == "2" and source.champion().fingerprint != first.fingerprint
    assert [r.version for r in source.versions()] == ["1", "2"]


def test_corrupted_champion_cannot_be_loaded(registry: ModelRegistry, fitted_model: object) -> None:
    _log(registry, fitted_model)
    registry.promote("machine-1-3", 1)
    source = RegistryModelSource(registry, "machine-1-3")
    ref = source.champion()
    _corrupt_artifact(registry, "machine-1-3", "1")
    with pytest.raises(ModelError, match="corrupted"):
        source.load(ref)


def test_serving_follows_the_registry_champion(registry: ModelRegistry, fitted_model: object) -> None:
    from vigil.detection.model_source import default_source

    _log(registry, fitted_model)
    registry.promote("machine-1-3", 1)
    source = default_source(registry.settings)
    ref = source.champion()
    assert ref.version == "1" and "machine-1-3:1:" in ref.fingerprint
    assert source.load(ref).threshold_ == fitted_model.threshold_  # type: ignore[attr-defined]


def test_a_copied_champion_serves_the_same_bundle_until_it_is_deleted(
    registry: ModelRegistry, fitted_model: object
) -> None:
    """What `vigil soak` does for each copy of an entity: a model of its own pointing at the original's
    verified bundle, in shadow mode; deleted, it is gone from serving's view and from the cache."""
    _log(registry, fitted_model)
    registry.promote("machine-1-3", 1)
    name = registry.copy_champion("machine-1-3", "soak0-machine-1-3", mode="shadow", tags={"vigil.soak": "true"})
    source = RegistryModelSource(registry, name)
    ref = source.champion()
    assert ref.extra["mode"] == "shadow" and registry.get(name).entity == "soak0-machine-1-3"
    assert source.load(ref).threshold_ == fitted_model.threshold_  # type: ignore[attr-defined]
    registry.delete(name)
    assert source.champion() is None  # a reload between listing and reading finds nothing, not an error
    assert not (registry.cache_dir / name).exists()
    assert registry.entities() == ["machine-1-3"]


def test_listed_champions_follow_aliases_modes_and_a_name_registered_again(
    registry: ModelRegistry, fitted_model: object
) -> None:
    """Serving's poll: one query lists every champion, and after each refresh a model's ref is the one
    reading it alone gives: when the alias moves, the mode flips, or the name is deleted and registered
    again (its version numbers start over)."""
    from vigil.registry.serving import ListedChampions

    listed = ListedChampions(registry)
    assert listed.refresh() == []
    _log(registry, fitted_model)
    _log(registry, fitted_model)
    registry.promote("machine-1-3", 1)
    name = registry.copy_champion("machine-1-3", "soak0-machine-1-3", mode="shadow")
    assert listed.refresh() == ["machine-1-3", name]
    own, copy = RegistryModelSource(registry, "machine-1-3", listed), RegistryModelSource(registry, name, listed)
    first = own.champion()
    assert first == RegistryModelSource(registry, "machine-1-3").champion()  # the same ref as one query a model
    assert copy.champion().extra["mode"] == "shadow"

    registry.promote("machine-1-3", 2)
    registry.set_mode(name, "paging")
    assert own.champion() == first  # nothing is read between refreshes
    listed.refresh()
    assert own.champion().version == "2" and own.champion().fingerprint != first.fingerprint
    assert copy.champion().extra["mode"] == "paging"

    registry.delete(name)
    listed.refresh()
    assert copy.champion() is None
    registry.copy_champion("machine-1-3", name, mode="shadow")  # version 1 again, of version 2's bundle
    listed.refresh()
    assert copy.champion() == RegistryModelSource(registry, name).champion()  # not the deleted model's ref
