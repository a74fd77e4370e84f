"""The deployment artifacts under deploy/ checked with the real tools they are written for.

* Grafana dashboards: every panel's PromQL is sent to a real Prometheus (the Debian package the
  stack runs), so a typo in a metric selector or function fails here, not in front of an operator.
  An empty result is fine; a parse error is not.
* systemd units: ``systemd-analyze verify`` with the Debian services' own units and our drop-ins.
* Terraform: ``fmt``, ``validate`` and the mocked-provider ``terraform test`` when a terraform
  binary and the AWS provider are available offline; otherwise skipped, saying why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import REPO_ROOT, free_port, wait_http
from vigil.config import load_settings
from vigil.detection.incidents import Topology

pytestmark = pytest.mark.integration

DEPLOY = REPO_ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
SYSTEMD = DEPLOY / "systemd"
TERRAFORM = DEPLOY / "terraform"

# What Grafana substitutes before a query reaches Prometheus. Single values are enough to parse:
# a multi-value selection only widens a regex matcher's alternation.
GRAFANA_VARS = {
    "entity": "host-1",
    "family": "node_cpu_seconds_total",
    "job": "node",
    "threshold": "0.95",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}


def _substitute(expr: str) -> str:
    out = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", lambda m: GRAFANA_VARS.get(m[1] or m[2], m[0]), expr)
    assert "$" not in out, f"unknown dashboard variable left in {out!r}"
    return out


def _panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows nest their panels


def _queries() -> list[tuple[str, str, str]]:
    found = []
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        for panel in _panels(dash):
            for target in panel.get("targets", []):
                found.append((f"{path.stem}/{panel['title']}/{target['refId']}", target["expr"], path.name))
        for var in dash["templating"]["list"]:
            if var["type"] == "query":
                # label_values(<selector>, label) is Grafana's; the selector inside is PromQL.
                m = re.fullmatch(r"label_values\((.+),\s*\w+\)", var["definition"])
                assert m, f"{path.name}: variable {var['name']} is not a label_values() query"
                found.append((f"{path.stem}/${var['name']}", m[1], path.name))
    return found


def test_dashboards_load_and_use_the_datasource_variable() -> None:
    titles = set()
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        titles.add(dash["title"])
        names = {v["name"]: v for v in dash["templating"]["list"]}
        assert names["DS_PROMETHEUS"]["type"] == "datasource", path.name
        ids = [p["id"] for p in _panels(dash)]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in _panels(dash):
            if panel["type"] == "row":
                continue
            # A hard-coded datasource uid would break the dashboard on every other Grafana.
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", f"{path.name}: {panel['title']}"
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", f"{path.name}: {panel['title']}"
    assert titles == {"Vigil overview", "Vigil data quality", "Vigil service"}
    overview = json.loads((DEPLOY / "grafana" / "dashboards" / "vigil-overview.json").read_text())
    assert any('entity=~"$entity"' in t["expr"] for p in _panels(overview) for t in p.get("targets", []))


def test_dashboard_metric_names_exist_in_vigil() -> None:
    # Prometheus accepts any name (an unknown one just returns nothing), so a typo would only show
    # as an empty panel; check every vigil_* name against the code that exports it.
    source = "\n".join(p.read_text() for p in (REPO_ROOT / "src" / "vigil").rglob("*.py"))
    for where, expr, dashboard in _queries():
        for name in set(re.findall(r"\bvigil_[a-z_]+", expr)):
            family = re.sub(r"_(total|bucket|sum|count)$", "", name)
            # Some families are built as f"vigil_{name}" / f"vigil_data_family_{suffix}" from a table
            # of bare names (vigil.server.metrics, vigil.ingest.quality).
            spelled = {family, family.removeprefix("vigil_"), family.removeprefix("vigil_data_family_")}
            assert any(f'"{s}"' in source for s in spelled), f"{dashboard}: {where}: {name} not in src/vigil"


def test_grafana_provisioning_files_parse() -> None:
    prov = DEPLOY / "grafana" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "vigil.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    dashboards = yaml.safe_load((prov / "dashboards" / "vigil.yml").read_text())
    assert dashboards["providers"][0]["type"] == "file"


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian package prometheus; run `make setup`)")
    work = tmp_path_factory.mktemp("prometheus")
    (work / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\n")
    port = free_port()
    log = (work / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", timeout_s=30, ok=lambda r: r.status_code == 200)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.parametrize(("where", "expr", "dashboard"), _queries(), ids=[q[0] for q in _queries()])
def test_dashboard_query_is_valid_promql(prometheus_url: str, where: str, expr: str, dashboard: str) -> None:
    query = _substitute(expr)
    resp = requests.get(f"{prometheus_url}/api/v1/query", params={"query": query}, timeout=10)
    body = resp.json()
    assert body.get("status") == "success", f"{dashboard}: {where}: {query!r} -> {body.get('error')}"


def test_rendered_deployment_config_passes_promtool(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    for line in (SYSTEMD / "vigil.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    env["VIGIL_HOME"] = str(tmp_path / "home")
    out = tmp_path / "rendered"
    done = subprocess.run(
        [sys.executable, str(SYSTEMD / "render-config.py"), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    prom = yaml.safe_load((out / "prometheus.yml").read_text())
    targets = [t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert targets and all(t.startswith("127.0.0.1:") for t in targets)
    assert prom["global"]["scrape_interval"] == "15s"
    assert yaml.safe_load((out / "alertmanager.yml").read_text())["receivers"][0]["webhook_configs"]


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not available")
    units = tmp_path / "units"
    units.mkdir()
    # The units run Vigil from /opt/vigil; here the checkout and its .venv stand in for it, so
    # verify can check that every ExecStart binary exists.
    for unit in [*SYSTEMD.glob("*.service"), *SYSTEMD.glob("*.timer")]:
        (units / unit.name).write_text(unit.read_text().replace("/opt/vigil", str(REPO_ROOT)))
    names = sorted(p.name for p in units.iterdir())
    for dropin in SYSTEMD.glob("*.service.d"):
        packaged = Path("/lib/systemd/system") / dropin.name.removesuffix(".d")
        if packaged.is_file():  # a drop-in is only checked together with the unit it changes
            shutil.copy(packaged, units / packaged.name)
            shutil.copytree(dropin, units / dropin.name)
            names.append(packaged.name)
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"}  # trailing colon: default path after ours
    done = subprocess.run([analyze, "verify", *names], cwd=units, env=env, capture_output=True, text=True, timeout=60)
    ours = [ln for ln in (done.stdout + done.stderr).splitlines() if any(n in ln for n in names) or str(units) in ln]
    assert done.returncode == 0 and not ours, "\n".join(ours) or done.stderr


def _terraform(args: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    # No user CLI config: a stray credentials helper or mirror setting must not change the result.
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    return subprocess.run(
        ["terraform", *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def terraform_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on PATH; validate with `terraform init -backend=false && terraform validate`")
    work = tmp_path_factory.mktemp("terraform") / "terraform"
    shutil.copytree(TERRAFORM, work, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    fmt = _terraform(["fmt", "-check", "-recursive", "-diff"], work)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    init = ["init", "-backend=false", "-input=false"]
    plugin_dir = os.environ.get("VIGIL_TF_PLUGIN_DIR", "/opt/tf-plugins")
    if Path(plugin_dir).is_dir():
        init.append(f"-plugin-dir={plugin_dir}")
    done = _terraform(init, work)
    if done.returncode != 0:
        pytest.skip(f"terraform init failed (no provider mirror and no registry access?): {done.stderr.strip()[-300:]}")
    return work


def test_terraform_validate(terraform_dir: Path) -> None:
    done = _terraform(["validate"], terraform_dir)
    assert done.returncode == 0, done.stdout + done.stderr


def test_terraform_mocked_plan_checks(terraform_dir: Path) -> None:
    done = _terraform(["test"], terraform_dir)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("repo_url", ["https://example.invalid/vigil.git", ""])
def test_terraform_user_data_renders_to_valid_bash(
    terraform_dir: Path, tmp_path: Path, repo_url: str, monkeypatch: pytest.MonkeyPatch, vigil_home: Path
) -> None:
    expr = (
        f'templatefile("user_data.sh.tftpl", {{repo_url = "{repo_url}", repo_ref = "main",'
        ' data_volume_id = "vol-0123456789abcdef0", install_local_llm = true,'
        ' entities_json = jsonencode({api = {host = "10.0.0.5", depends_on = {postgres = "local"},'
        ' dependency_duration_metric = "api_db_seconds", dependency_failures_metric = "api_db_failures_total"}})})'
    )
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull}
    done = subprocess.run(
        ["terraform", "console"], cwd=terraform_dir, input=expr, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "<<EOT" and lines[-1] == "EOT", done.stdout[:200]  # console prints strings as heredocs
    script = tmp_path / "user_data.sh"
    script.write_text("\n".join(lines[1:-1]) + "\n")
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    text = script.read_text()
    assert "nvme-Amazon_Elastic_Block_Store_${vol_id//-/}" in text  # $${...} reached bash unexpanded
    assert "export VIGIL_SKIP_LLM=0" in text
    assert "https://download.pytorch.org/whl/cpu" in text  # torch==...+cpu is not on PyPI
    # The topology the units read is what Vigil's settings take as `entities:`.
    (line,) = [x for x in text.splitlines() if x.startswith("VIGIL_ENTITIES=")]
    monkeypatch.setenv("VIGIL_ENTITIES", line.removeprefix("VIGIL_ENTITIES=").strip("'"))  # as systemd passes it
    settings = load_settings()
    assert settings.entities["api"].depends_on == {"postgres": "local"}
    assert Topology.from_settings(settings).related("api", "10.0.0.5:9100")
