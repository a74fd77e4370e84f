"""Rendering the local stack's config files from the deploy/ templates."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vigil.config import DEPLOY_DIR, load_settings
from vigil.errors import ConfigError
from vigil.stack import render
from vigil.stack.registry import Plan, components


def _plan(settings, drop=()):
    comps = [c for c in components(settings) if c.name not in drop]
    return Plan(comps)


@pytest.mark.parametrize(("seconds", "text"), [(1, "1s"), (0.5, "500ms"), (15, "15s"), (1.25, "1250ms")])
def test_duration_formats_prometheus_durations(seconds, text):
    assert render.duration(seconds) == text


def test_duration_rejects_non_positive():
    with pytest.raises(ConfigError):
        render.duration(0)


def test_prometheus_config_scrapes_every_planned_component_on_its_port(vigil_home, monkeypatch):
    monkeypatch.setenv("VIGIL_PORTS__PROMETHEUS", "29090")
    settings = load_settings()
    plan = _plan(settings)
    written = render.render_all(settings, plan)
    cfg = yaml.safe_load(written["prometheus"].read_text())

    assert cfg["global"]["scrape_interval"] == "1s"
    assert cfg["global"]["evaluation_interval"] == "1s"
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in cfg["scrape_configs"]}
    assert jobs == {c.job: [f"127.0.0.1:{c.port}"] for c in plan.components}
    assert jobs["prometheus"] == ["127.0.0.1:29090"]
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19093"]
    rw = cfg["remote_write"][0]
    assert rw["url"] == "http://127.0.0.1:19000/api/v1/write"
    assert rw["queue_config"]["batch_send_deadline"] == "100ms"


def test_rendering_includes_every_rule_file_and_no_test_file(vigil_home):
    settings = load_settings()
    written = render.render_all(settings, _plan(settings))
    cfg = yaml.safe_load(written["prometheus"].read_text())

    rules_dir = DEPLOY_DIR / "prometheus" / "rules"
    sources = {p.name for p in rules_dir.glob("*.yml") if "groups" in (yaml.safe_load(p.read_text()) or {})}
    assert "targets.yml" in sources
    assert {Path(f).name for f in cfg["rule_files"]} == sources
    assert all(Path(f).exists() for f in cfg["rule_files"])
    assert "targets_test.yml" not in {Path(f).name for f in cfg["rule_files"]}


def test_a_stack_without_the_vigil_service_has_no_remote_write_and_no_webhook(vigil_home):
    settings = load_settings()
    written = render.render_all(settings, _plan(settings, drop=("vigil", "collector")))
    prom = yaml.safe_load(written["prometheus"].read_text())
    am = yaml.safe_load(written["alertmanager"].read_text())

    assert "remote_write" not in prom
    assert {j["job_name"] for j in prom["scrape_configs"]}.isdisjoint({"vigil", "collector"})
    assert "webhook_configs" not in am["receivers"][0]


def test_alertmanager_config_posts_to_the_vigil_service_with_short_group_wait(vigil_home):
    settings = load_settings()
    written = render.render_all(settings, _plan(settings))
    am = yaml.safe_load(written["alertmanager"].read_text())

    assert am["route"]["group_wait"] == "1s"
    assert am["receivers"][0]["webhook_configs"][0]["url"] == "http://127.0.0.1:19000/v1/alertmanager"
    done = subprocess.run(["amtool", "check-config", str(written["alertmanager"])], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_rule_file_is_a_config_error_naming_promtool(vigil_home, tmp_path, monkeypatch):
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY_DIR, deploy)
    (deploy / "prometheus" / "rules" / "broken.yml").write_text(
        "groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: up ==\n"
    )
    monkeypatch.setenv("VIGIL_DEPLOY_DIR", str(deploy))
    settings = load_settings()
    with pytest.raises(ConfigError, match="promtool rejects") as info:
        render.render_all(settings, _plan(settings))
    assert f"{deploy / 'prometheus' / 'rules' / 'broken.yml'}: 5:" in str(info.value)  # the file to edit


def test_a_rule_file_that_is_not_yaml_is_a_one_line_config_error(vigil_home, tmp_path, monkeypatch):
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY_DIR, deploy)
    (deploy / "prometheus" / "rules" / "broken.yml").write_text("groups: [\n")
    monkeypatch.setenv("VIGIL_DEPLOY_DIR", str(deploy))
    with pytest.raises(ConfigError) as info:
        render.render_all(load_settings(), _plan(load_settings()))
    assert "broken.yml is not valid YAML at line 2" in str(info.value)
    assert "\n" not in str(info.value)


def test_template_missing_a_variable_fails_instead_of_rendering_empty(tmp_path):
    tmpl = tmp_path / "t.yml.j2"
    tmpl.write_text("a: {{ missing }}\n")
    with pytest.raises(ConfigError, match="cannot render"):
        render.render_template(tmpl, {})
