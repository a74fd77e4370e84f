"""`vigil up/down/status` on the real components (Prometheus, node_exporter, Alertmanager, mtail, demo)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from vigil.config import DEPLOY_DIR
from vigil.stack import procs

pytestmark = pytest.mark.integration

CORE = {"node_exporter", "alertmanager", "demo_app", "mtail", "loadgen", "prometheus"}


def _alive(pid: int) -> bool:
    stat = procs.proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def _cmdlines_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def _target_jobs(stack) -> set[str]:
    # Ready comes before the scrape manager has applied the config; give it a moment.
    deadline = time.monotonic() + 15
    while True:
        targets = requests.get(stack.url("prometheus") + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        if targets or time.monotonic() > deadline:
            return {t["labels"]["job"] for t in targets}
        time.sleep(0.5)


def _up(stack, *only: str) -> float:
    t0 = time.monotonic()
    done = stack.run("up", *only, "--timeout", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    return time.monotonic() - t0


def test_up_reports_every_component_healthy_and_a_second_up_starts_nothing(stack, tmp_path):
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY_DIR, deploy)
    stack.env["VIGIL_DEPLOY_DIR"] = str(deploy)
    assert _up(stack) < 60

    done = stack.run("status", "--json")
    assert done.returncode == 0
    report = json.loads(done.stdout)
    comps = report["components"]
    assert CORE <= {c["name"] for c in comps}
    for comp in comps:
        assert {"name", "pid", "url", "healthy"} <= set(comp)
        assert comp["healthy"] is True, comp
        assert _alive(comp["pid"])
        assert comp["url"].startswith(f"http://127.0.0.1:{stack.ports[comp['name']]}")

    first = stack.pids()
    again = stack.run("up", "--timeout", "30")
    assert again.returncode == 0
    assert "already running" in again.stdout
    assert stack.pids() == first
    config = f"--config.file={stack.home / 'etc' / 'prometheus.yml'}"
    assert len(_cmdlines_mentioning(config)) == 1  # one Prometheus for this home, not two

    # A rule file added while the stack runs is picked up by the next `vigil up`, without a restart.
    (deploy / "prometheus" / "rules" / "added.yml").write_text(
        "groups:\n  - name: added-later\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n"
    )
    assert stack.run("up", "--timeout", "30").returncode == 0
    groups = requests.get(stack.url("prometheus") + "/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert {"vigil-targets", "added-later"} <= {g["name"] for g in groups}
    assert stack.pids() == first

    assert {"node", "prometheus", "alertmanager", "mtail", "demo", "loadgen"} <= _target_jobs(stack)


def test_dead_node_exporter_fires_target_down_in_alertmanager_within_a_minute(stack):
    _up(stack, "node_exporter", "alertmanager", "mtail", "prometheus")  # what the alert path needs, and a bystander
    node_pid = stack.pids()["node_exporter"]
    killed = time.monotonic()
    os.kill(node_pid, signal.SIGTERM)  # a clean stop: the supervisor leaves it down, as an operator would

    alerts: list = []
    while time.monotonic() - killed < 60:
        alerts = requests.get(
            stack.url("alertmanager") + "/api/v2/alerts", params={"filter": 'alertname="TargetDown"'}, timeout=5
        ).json()
        if any(a["labels"].get("job") == "node" for a in alerts):
            break
        time.sleep(1)
    took = time.monotonic() - killed
    node_alerts = [a for a in alerts if a["labels"].get("job") == "node"]
    assert node_alerts, f"no TargetDown for job=node in Alertmanager after {took:.0f}s: {alerts}"
    assert node_alerts[0]["labels"]["instance"] == f"127.0.0.1:{stack.ports['node_exporter']}"
    assert node_alerts[0]["status"]["state"] == "active"
    assert [a for a in alerts if a["labels"].get("job") != "node"] == []  # only the dead target

    down = {c["name"]: c for c in stack.status()["components"]}["node_exporter"]
    assert (down["healthy"], down["pid"], down["state"]) == (False, None, "stopped")
    assert _up(stack) < 60  # `vigil up` brings back what was stopped
    assert stack.pids()["node_exporter"] not in (None, node_pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _node_target_down_alerts(stack):
        time.sleep(1)
    assert _node_target_down_alerts(stack) == []  # and the alert resolves


def _node_target_down_alerts(stack) -> list:
    alerts = requests.get(
        stack.url("alertmanager") + "/api/v2/alerts", params={"filter": 'alertname="TargetDown"'}, timeout=5
    ).json()
    return [a for a in alerts if a["labels"].get("job") == "node"]


def test_crash_restart_then_down_after_supervisor_sigkill_stops_exactly_the_stack(stack):
    _up(stack)
    pids = stack.pids()
    os.kill(pids["demo_app"], signal.SIGKILL)  # a crash: restarted with backoff
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        demo = {c["name"]: c for c in stack.status()["components"]}["demo_app"]
        if demo["healthy"] and demo["pid"] != pids["demo_app"]:
            break
        time.sleep(0.5)
    assert demo["healthy"] and demo["pid"] != pids["demo_app"] and demo["restarts"] == 1

    pids = stack.pids()
    supervisor = stack.status()["supervisor"]["pid"]
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        os.kill(supervisor, signal.SIGKILL)
        time.sleep(0.5)
        assert all(_alive(pid) for pid in pids.values())  # children outlive the supervisor

        # A new `vigil up` adopts them instead of starting second copies...
        assert _up(stack) < 60
        assert stack.pids() == pids
        successor = stack.status()["supervisor"]["pid"]
        assert successor not in (None, supervisor)
        # ...and `vigil down` finds them through their pid files when that supervisor dies too.
        os.kill(successor, signal.SIGKILL)
        time.sleep(0.5)

        done = stack.run("down")
        assert done.returncode == 0
        assert "supervisor" not in done.stdout  # it was already dead
        assert all(name in done.stdout for name in pids)
        assert not [name for name, pid in pids.items() if _alive(pid)]
        assert bystander.poll() is None
        assert list((stack.home / "run").glob("*.pid")) == []
        after = stack.run("status", "--json")
        assert after.returncode == 1
        assert all(c["pid"] is None and not c["healthy"] for c in stack.status()["components"])
    finally:
        bystander.kill()
        bystander.wait()


def test_port_in_use_is_one_readable_line_and_starts_nothing(stack):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", stack.ports["prometheus"]))
        busy.listen()
        done = stack.run("up", "--timeout", "30")
    assert done.returncode == 4
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"vigil: error: port 127.0.0.1:{stack.ports['prometheus']} for prometheus")
    assert "VIGIL_PORTS__PROMETHEUS" in done.stderr
    assert procs.all_records(stack.home / "run") == []


def test_missing_debian_package_is_one_readable_line(stack):
    env = {**stack.env, "PATH": str(Path(sys.executable).parent)}  # the venv, but no Debian binaries
    done = stack.run("up", env=env)
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "the Debian package prometheus-node-exporter is not installed" in done.stderr
    assert "make setup" in done.stderr


@pytest.mark.parametrize("text", ["ports: [unclosed\n", "scrape_interval_s: fast\n", "no_such_setting: 1\n"])
def test_malformed_config_file_is_one_readable_line(stack, text):
    (stack.home / "vigil.yml").write_text(text)
    for command in (["up"], ["status"]):
        done = stack.run(*command)
        assert done.returncode == 2, command
        assert done.stderr.startswith("vigil: error: ") and done.stderr.count("\n") == 1
        assert "Traceback" not in done.stderr


def test_foreground_shows_live_status_and_ctrl_c_stops_everything(stack):
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: `vigil up --foreground` on a terminal, as `make run` runs it
        argv = [sys.executable, "-m", "vigil.cli.main", "up", "node_exporter", "demo_app", "prometheus", "--foreground"]
        os.execve(sys.executable, argv, stack.env)
    screen = b""
    try:
        deadline = time.monotonic() + 60
        report: dict = {}
        while time.monotonic() < deadline:
            screen += _drain(fd)
            report = stack.status()
            if report["components"] and all(c["healthy"] for c in report["components"]):
                break
            time.sleep(0.5)
        pids = {c["name"]: c["pid"] for c in report["components"]}
        assert set(pids) == {"node_exporter", "demo_app", "prometheus"} and all(pids.values()), report
        time.sleep(1.5)  # one refresh of the live table
        screen += _drain(fd)
        assert b"Ctrl-C stops it" in screen and b"prometheus" in screen

        os.write(fd, b"\x03")  # Ctrl-C through the terminal driver: SIGINT to the foreground group only
        stopped_by = time.monotonic() + 30
        while time.monotonic() < stopped_by:
            screen += _drain(fd)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("vigil up --foreground did not exit within 30 s of Ctrl-C")
        assert os.waitstatus_to_exitcode(status) == 0
        assert not [name for name, p in pids.items() if _alive(p)]
        assert list((stack.home / "run").glob("*.pid")) == []
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)


def _drain(fd: int) -> bytes:
    import select

    out = b""
    while select.select([fd], [], [], 0)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


def test_up_with_named_components_runs_and_scrapes_only_those(stack):
    done = stack.run("up", "node_exporter", "prometheus", "--timeout", "60")
    assert done.returncode == 0, done.stderr
    assert {c["name"] for c in stack.status()["components"]} == {"node_exporter", "prometheus"}
    assert _target_jobs(stack) == {"node", "prometheus"}
    more = stack.run("up", "mtail")
    assert more.returncode == 2 and "the running stack has no mtail" in more.stderr


def test_a_component_that_cannot_start_fails_up_fast_with_its_last_log_line(stack, tmp_path):
    env = {**stack.env, "VIGIL_DEMO__DB_PATH": str(tmp_path)}  # a directory: SQLite cannot open it
    t0 = time.monotonic()
    done = stack.run("up", "demo_app", "--timeout", "90", env=env)
    assert done.returncode == 1
    assert time.monotonic() - t0 < 45  # three restarts, not the whole timeout
    assert done.stderr.startswith("vigil: error: demo_app exited with status 3 during start-up: ")
    assert "Worker failed to boot" in done.stderr  # gunicorn's own last word, from the component's log
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert str(stack.home / "logs" / "demo_app.log") in done.stderr
