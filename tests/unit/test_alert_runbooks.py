"""Every alert rule Vigil ships links a runbook (its ``runbook_url`` annotation) that exists and has
symptoms, checks and fixes; every ``vigil`` command a runbook or an operator's document names
parses with the real CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer
import yaml

from vigil.cli.main import app
from vigil.config import DEPLOY_DIR
from vigil.stack.render import rule_sources

REPO = DEPLOY_DIR.parent
SECTIONS = ("## Symptoms", "## Checks", "## Fixes")
COMMAND = re.compile(r"`(vigil [^`]+)`")


def _alerts() -> list[tuple[str, dict]]:
    out = []
    for path in rule_sources():
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += [(rule["alert"], rule) for rule in group["rules"] if "alert" in rule]
    return out


def _runbooks() -> list[Path]:
    return sorted({REPO / rule["annotations"]["runbook_url"] for _, rule in _alerts()})


def test_the_rules_are_found() -> None:
    names = {name for name, _ in _alerts()}
    assert {"VigilDown", "VigilInputDrift", "VigilDataGaps", "VigilSLOBurnIngest"} <= names, names


@pytest.mark.parametrize(("name", "rule"), _alerts(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_alert_links_a_runbook_with_symptoms_checks_and_fixes(name: str, rule: dict) -> None:
    url = rule.get("annotations", {}).get("runbook_url", "")
    assert url == f"docs/runbooks/vigil/{name}.md", f"{name}: runbook_url {url!r}"
    text = (REPO / url).read_text()
    assert text.startswith(f"# {name}\n")
    for section, body in zip(SECTIONS, re.split(r"^## .*$", text, flags=re.M)[1:], strict=False):
        assert section in text and body.strip(), f"{url}: {section} is missing or empty"


def _parse(args: list[str]) -> None:
    """Resolve and parse ``vigil <args>`` as the CLI would, without running it."""
    command: click.Command = typer.main.get_command(app)
    ctx = command.make_context("vigil", args)
    while isinstance(command, click.Group):
        rest = [*ctx.protected_args, *ctx.args]
        if not rest:
            return
        _name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None, args
        command, ctx = sub, sub.make_context(_name or "", rest, parent=ctx)


OPERATOR_DOCS = ("operations.md", "troubleshooting.md", "incident-response.md", "slo.md", "ui.md")


def _commands() -> list[tuple[str, str]]:
    found = []
    for path in [*_runbooks(), *(REPO / "docs" / name for name in OPERATOR_DOCS)]:
        for span in COMMAND.findall(path.read_text()):
            found += [(path.name, part.strip()) for part in span.split("&&")]
    return found


def test_runbooks_name_commands() -> None:
    assert len(_commands()) >= 20


@pytest.mark.parametrize(("runbook", "command"), _commands())
def test_every_command_a_runbook_names_parses(runbook: str, command: str) -> None:
    words = shlex.split(command)
    assert words[0] == "vigil"
    try:
        _parse(words[1:])
    except click.UsageError as exc:
        pytest.fail(f"{runbook}: `{command}` does not parse: {exc}")
