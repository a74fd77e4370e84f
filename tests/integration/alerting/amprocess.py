"""A real Alertmanager (Debian ``prometheus-alertmanager``) as a child process, restartable for outages."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import requests

from tests.conftest import free_port, unavailable, wait_http

BINARY = "prometheus-alertmanager"


def alertmanager_binary() -> str:
    path = shutil.which(BINARY) or shutil.which("alertmanager")
    if path is None:
        unavailable(f"{BINARY} is not installed (scripts/setup.sh installs it)")
    return path


class AlertmanagerProcess:
    """Starts on a free 127.0.0.1 port with gossip off; ``stop``/``start`` keep the port and storage."""

    def __init__(
        self,
        workdir: Path,
        *,
        webhook_url: str = "",
        port: int | None = None,
        shipped_config: bool = False,
        webhook_token_file: str = "",
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage = workdir / "am-data"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "alertmanager.yml"
        self.log = workdir / "alertmanager.log"
        if shipped_config:  # the template `vigil up` renders, with the stack's timings
            from vigil.config import DEPLOY_DIR
            from vigil.stack.render import render_template

            context = {
                "webhook_url": webhook_url,
                "webhook_token_file": webhook_token_file,
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            }
            self.config.write_text(render_template(DEPLOY_DIR / "alertmanager" / "alertmanager.yml.j2", context))
            self._proc: subprocess.Popen[bytes] | None = None
            return
        receiver = "vigil"
        hook = f"    webhook_configs:\n      - url: {webhook_url}\n        send_resolved: true\n" if webhook_url else ""
        self.config.write_text(
            "route:\n"
            f"  receiver: {receiver}\n"
            "  group_by: [entity]\n"
            "  group_wait: 1s\n"
            "  group_interval: 1s\n"
            "  repeat_interval: 1h\n"
            "receivers:\n"
            f"  - name: {receiver}\n" + hook
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = alertmanager_binary()
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config}",
                    f"--storage.path={self.storage}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_http(f"{self.url}/-/ready", timeout_s=30)

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None
        # The port must really be closed, or "down" would not be down.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/-/ready", timeout=0.5)
            except requests.RequestException:
                return
            time.sleep(0.1)

    def alerts(self, **filters: str) -> list[dict]:
        params = [("filter", f'{k}="{v}"') for k, v in filters.items()]
        return requests.get(f"{self.url}/api/v2/alerts", params=params, timeout=5).json()
