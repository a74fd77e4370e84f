"""Config files for the local stack, rendered from the templates in ``deploy/``.

The templates are shared with the AWS deployment, so everything host- or timing-specific is a
template variable; :func:`prometheus_context` and :func:`alertmanager_context` fill them for loopback.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import yaml

from vigil.config import DEPLOY_DIR, Settings
from vigil.errors import ConfigError, DependencyMissing
from vigil.stack.registry import Plan, etc_dir
from vigil.tokens import webhook_token_file


def duration(seconds: float) -> str:
    """A Prometheus duration string: 1 -> "1s", 0.5 -> "500ms", 90 -> "90s"."""
    if seconds <= 0:
        raise ConfigError(f"interval must be positive, got {seconds}")
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _env(directory: Path) -> jinja2.Environment:
    # StrictUndefined: a variable the context forgot must fail rendering, not become an empty string.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_template(path: Path, context: dict[str, Any]) -> str:
    try:
        text = _env(path.parent).get_template(path.name).render(**context)
    except jinja2.TemplateError as exc:
        raise ConfigError(f"cannot render {path}: {exc}") from None
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"rendering {path} gave invalid YAML{_where(exc)}") from None
    return text


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f" at line {mark.line + 1}" if mark else ""


def is_rule_file(path: Path) -> bool:
    """Rule files hold ``groups``; promtool test files (``rule_files`` + ``tests``) share the folder."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"rule file {path} is not valid YAML{_where(exc)}", hint="fix the syntax") from None
    return isinstance(data, dict) and "groups" in data and "tests" not in data


def rule_sources(rules_dir: Path = DEPLOY_DIR / "prometheus" / "rules") -> list[Path]:
    return [p for p in sorted(rules_dir.glob("*.yml")) if is_rule_file(p)]


def rule_test_files(rules_dir: Path = DEPLOY_DIR / "prometheus" / "rules") -> list[Path]:
    found = []
    for path in sorted(rules_dir.glob("*.yml")):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and "tests" in data:
            found.append(path)
    return found


def prometheus_context(settings: Settings, plan: Plan, rule_files: list[str]) -> dict[str, Any]:
    host = settings.bind_host
    by_name = {c.name: c for c in plan.components}
    jobs = [
        {"job": c.job, "metrics_path": c.scrape_path, "targets": [f"{host}:{c.port}"]} for c in plan.components if c.job
    ]
    remote_write = []
    if "vigil" in by_name:
        remote_write.append(
            {
                "url": f"{settings.url('vigil')}/api/v1/write",
                # Samples wait in Prometheus' shard queue until this deadline when a batch does not fill
                # (a 1 s scrape of a few hundred series never does): it adds to every detection.
                "batch_send_deadline": "100ms",
                "max_samples_per_send": 2000,
                "capacity": 10000,
                "max_shards": 4,
            }
        )
    interval = duration(settings.scrape_interval_s)
    return {
        "scrape_interval": interval,
        # The timeout may not exceed the interval; at 1 s a scrape that takes longer is a failure anyway.
        "scrape_timeout": duration(min(settings.scrape_interval_s, 10.0)),
        "evaluation_interval": duration(settings.evaluation_interval_s),
        "external_labels": {"vigil_stack": "local"},
        "rule_files": rule_files,
        "alertmanagers": [f"{host}:{settings.ports.alertmanager}"] if "alertmanager" in by_name else [],
        "scrape_jobs": jobs,
        "remote_write": remote_write,
    }


def alertmanager_context(settings: Settings, plan: Plan) -> dict[str, Any]:
    has_vigil = any(c.name == "vigil" for c in plan.components)
    return {
        "webhook_url": f"{settings.url('vigil')}/v1/alertmanager" if has_vigil else "",
        "webhook_token_file": str(webhook_token_file(settings)) if has_vigil else "",
        # Seconds, not the production minutes: the local stack is for watching detection happen.
        "group_wait": "1s",
        "group_interval": "5s",
        "repeat_interval": "1h",
    }


def _promtool_check(config: Path, rules_copy: Path, rules_source: Path) -> None:
    if shutil.which("promtool") is None:
        raise DependencyMissing(
            "promtool not found: the Debian package prometheus is not installed", hint="run `make setup`"
        )
    done = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if "FAILED" in ln or "error" in ln]
        # Name the file people edit, not the copy under $VIGIL_HOME.
        why = (lines or ["unknown error"])[-1].replace(f"{rules_copy}/", f"{rules_source}/")
        raise ConfigError(f"promtool rejects {config}: {why}")


def render_all(settings: Settings, plan: Plan, check: bool = True) -> dict[str, Path]:
    """Write prometheus.yml, alertmanager.yml and the rule files under ``$VIGIL_HOME/etc``."""
    etc = etc_dir(settings)
    rules_out = etc / "rules"
    if rules_out.exists():
        shutil.rmtree(rules_out)  # a rule file deleted from deploy/ must not linger in the stack
    rules_out.mkdir(parents=True)
    copied = []
    for src in rule_sources(settings.deploy_dir / "prometheus" / "rules"):
        dst = rules_out / src.name
        shutil.copyfile(src, dst)
        copied.append(str(dst))

    written: dict[str, Path] = {}
    names = {c.name for c in plan.components}
    if "prometheus" in names:
        path = etc / "prometheus.yml"
        tmpl = settings.deploy_dir / "prometheus" / "prometheus.yml.j2"
        path.write_text(render_template(tmpl, prometheus_context(settings, plan, copied)))
        if check:
            _promtool_check(path, rules_out, settings.deploy_dir / "prometheus" / "rules")
        written["prometheus"] = path
    if "alertmanager" in names:
        path = etc / "alertmanager.yml"
        tmpl = settings.deploy_dir / "alertmanager" / "alertmanager.yml.j2"
        path.write_text(render_template(tmpl, alertmanager_context(settings, plan)))
        written["alertmanager"] = path
    return written
