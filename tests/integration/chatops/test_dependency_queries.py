"""The dependency evidence's PromQL, evaluated by Prometheus' own engine (``promtool test rules``)
over series shaped like a database outage: the failures counter is created at the outage's first
failed call, so Prometheus holds one sample of it when the alert asks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import unavailable
from vigil.chatops.evidence import DEPENDENCY_WINDOW_S, ServiceDependencies

pytestmark = pytest.mark.integration

DEMO = ServiceDependencies({"database": "local"}, "demo_dependency_duration_seconds", "demo_dependency_failures_total")
FAILED = 'demo_dependency_failures_total{dependency="database",error="OperationalError"}'
# An older error series failing steadily at 2 a second since the start.
TIMED_OUT = 'demo_dependency_failures_total{dependency="database",error="Timeout"}'


def _evaluate(tmp_path: Path, cases: list[tuple[str, str, list[dict]]]) -> subprocess.CompletedProcess[str]:
    test = {
        "rule_files": [],
        "evaluation_interval": "1s",
        "tests": [
            {
                "interval": "1s",
                "input_series": [
                    # Absent for 60 s, then 12 calls fail at once and 8 more every second.
                    {"series": FAILED, "values": "_x60 12+8x20"},
                    {"series": TIMED_OUT, "values": "0+2x90"},
                ],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": at, "exp_samples": samples} for expr, at, samples in cases
                ],
            }
        ],
    }
    path = tmp_path / "dependency_test.yml"
    path.write_text(yaml.safe_dump(test))
    return subprocess.run(["promtool", "test", "rules", path.name], cwd=tmp_path, capture_output=True, text=True)


def test_a_failures_series_counts_from_its_first_sample(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        unavailable("promtool missing: run `make setup`")
    by_error = DEMO.failures_query("database", by="error")
    cases = [
        # One sample of the new series: its 12 failures happened within the window.
        (by_error, "60s", [{"labels": '{error="OperationalError"}', "value": 12 / DEPENDENCY_WINDOW_S},
                           {"labels": '{error="Timeout"}', "value": 2.0}]),
        # Six samples, still younger than the window: everything it holds (12 + 5 * 8) counts.
        (by_error, "65s", [{"labels": '{error="OperationalError"}', "value": 52 / DEPENDENCY_WINDOW_S},
                           {"labels": '{error="Timeout"}', "value": 2.0}]),
        # Older than the window: its rate, 8 a second.
        (by_error, "78s", [{"labels": '{error="OperationalError"}', "value": 8.0},
                           {"labels": '{error="Timeout"}', "value": 2.0}]),
        (DEMO.failures_query("database"), "60s", [{"labels": "{}", "value": 12 / DEPENDENCY_WINDOW_S + 2.0}]),
    ]  # fmt: skip
    done = _evaluate(tmp_path, cases)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_failures_query_is_checked_by_promtool_itself(tmp_path: Path) -> None:
    """A wrong expectation fails, so the test above is not passing on an ignored file."""
    if shutil.which("promtool") is None:
        unavailable("promtool missing: run `make setup`")
    done = _evaluate(tmp_path, [(DEMO.failures_query("database"), "60s", [{"labels": "{}", "value": 2.0}])])
    assert done.returncode != 0 and "got: {} 2.8E+00" in done.stdout + done.stderr, done.stdout + done.stderr
