"""The declarative component registry and how unavailable pieces are handled."""

from __future__ import annotations

import pytest

from vigil.config import load_settings
from vigil.errors import ConfigError, DependencyMissing
from vigil.stack import registry
from vigil.stack.registry import Plan, components, resolve


def test_every_component_has_its_own_port_and_name(vigil_home):
    comps = components(load_settings())
    names = [c.name for c in comps]
    assert names == [
        "node_exporter", "alertmanager", "vigil", "demo_app", "mtail", "loadgen", "prometheus", "collector", "trainer"
    ]  # fmt: skip
    assert len({c.port for c in comps}) == len(comps)


def test_ports_come_from_settings(vigil_home, monkeypatch):
    monkeypatch.setenv("VIGIL_PORTS__NODE_EXPORTER", "29100")
    node = next(c for c in components(load_settings()) if c.name == "node_exporter")
    assert node.port == 29100
    assert "--web.listen-address=127.0.0.1:29100" in node.command
    assert "--no-collector.systemd" in node.command


def test_missing_debian_binary_names_the_package_and_make_setup(vigil_home, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    with pytest.raises(DependencyMissing) as info:
        resolve(load_settings(), only=["mtail"])
    assert "Debian package mtail" in str(info.value)
    assert "make setup" in str(info.value)


def test_plan_round_trips_through_json_data(vigil_home):
    plan = Plan(components(load_settings()))
    assert Plan.from_dict(plan.to_dict()) == plan
    # A plan a running stack wrote under an older version, with fields this one no longer has.
    older = plan.to_dict()
    older["components"][0]["probe"] = ["serve"]
    assert Plan.from_dict({**older, "skipped": {}}) == plan


def test_select_keeps_start_order_and_rejects_unknown_names(vigil_home):
    settings = load_settings()
    assert [c.name for c in registry.select(settings, ["prometheus", "node_exporter"])] == [
        "node_exporter",
        "prometheus",
    ]
    with pytest.raises(ConfigError, match="unknown stack component nope"):
        registry.select(settings, ["nope"])
