"""Every rule file in deploy/prometheus/rules/ is valid and every promtool test file there passes.

Test files are found by content (top-level ``tests:``), whoever wrote them, so rule tests added by
other parts of the project run here without registering anywhere.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import unavailable
from vigil.config import DEPLOY_DIR
from vigil.stack.render import rule_sources, rule_test_files

RULES = DEPLOY_DIR / "prometheus" / "rules"


@pytest.fixture(autouse=True)
def _promtool() -> None:
    if shutil.which("promtool") is None:
        unavailable("promtool missing: run `make setup`")


def test_the_dead_target_rule_and_its_test_are_found():
    assert RULES / "targets.yml" in rule_sources()
    assert RULES / "targets_test.yml" in rule_test_files()


@pytest.mark.parametrize("rule_file", rule_sources(), ids=lambda p: p.name)
def test_rule_file_is_valid(rule_file):
    done = subprocess.run(["promtool", "check", "rules", rule_file.name], cwd=RULES, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("test_file", rule_test_files(), ids=lambda p: p.name)
def test_promtool_rule_tests_pass(test_file):
    done = subprocess.run(["promtool", "test", "rules", test_file.name], cwd=RULES, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
