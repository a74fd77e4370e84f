"""The service-facing faults hurt the real demo service the way the campaign relies on.

The demo orders API runs under gunicorn (as in the stack) with its database on a small ext4
filesystem and its inventory dependency behind the network lab; each fault must show up in the
service's own answers: 503s, 502s, or slower requests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, free_port, wait_http
from vigil.validation import measure
from vigil.validation.database import DatabaseContention, DatabaseOutage
from vigil.validation.journal import CleanupJournal
from vigil.validation.network import BandwidthLimit, NetLab, NetworkDelay, PacketLoss
from vigil.validation.process import ProcessCrash
from vigil.validation.storage import DiskFull, SmallFilesystem

pytestmark = pytest.mark.integration


class Demo:
    def __init__(self, home: Path, db: Path, downstream: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "VIGIL_HOME": str(home), "VIGIL_DEMO__DB_PATH": str(db),
                    "VIGIL_DEMO__DOWNSTREAM_URL": downstream}  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.proc is not None:  # restarting after a crash fault killed it: reap the old process
            self.proc.wait(timeout=10)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", f"--bind=127.0.0.1:{self.port}", "--workers=1",
             "--worker-class=gthread", "--threads=8", "--no-control-socket", "vigil.demo.app:create_app()"],
            cwd=REPO_ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_http(f"{self.url}/healthz", timeout_s=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def probe(self, path: str, n: int = 6, method: str = "GET", spacing_s: float = 0.0) -> measure.ProbeResult:
        body = {"sku": "SKU-001", "quantity": 1} if method == "POST" else None
        return measure.http_probe(
            f"{self.url}{path}", n=n, timeout_s=5, method=method, json_body=body, spacing_s=spacing_s
        )


@pytest.fixture
def staged(journal: CleanupJournal, vigil_home: Path) -> Iterator[tuple[Demo, NetLab, Path]]:
    fs_dir = vigil_home / "demo-fs"
    lab = NetLab(journal, vigil_home / "run", name=f"d{os.getpid() % 100000}")
    with SmallFilesystem(journal, fs_dir, size_mb=32), lab:
        demo = Demo(vigil_home, fs_dir / "orders.db", f"{lab.url}/inventory")
        demo.start()
        try:
            yield demo, lab, fs_dir
        finally:
            demo.stop()
    assert journal.open_entries(include_live=True) == []


def test_storage_and_database_faults_break_the_service(journal: CleanupJournal, staged: tuple) -> None:
    demo, _lab, fs_dir = staged
    assert demo.probe("/api/orders").errors == 0
    assert demo.probe("/api/orders", method="POST").statuses.get("201") == 6

    with DiskFull(journal, fs_dir):
        full = demo.probe("/api/orders", method="POST")
    assert full.statuses.get("503", 0) >= 5, full  # writes fail: the database cannot grow
    assert demo.probe("/api/orders", method="POST").statuses.get("201") == 6  # and recover

    with DatabaseOutage(journal, fs_dir / "orders.db", max_duration_s=30):
        down = demo.probe("/api/orders", n=3)
    assert down.statuses.get("503") == 3, down

    base = demo.probe("/api/orders", n=30, spacing_s=0.25)
    with DatabaseContention(journal, fs_dir / "orders.db", hold_ms=150, period_ms=250, max_duration_s=60):
        slow = demo.probe("/api/orders", n=30, spacing_s=0.25)
    assert slow.errors == 0, slow
    assert slow.p90_ms > base.p90_ms + 60, (base, slow)  # requests queue behind the held lock


def test_network_faults_degrade_the_dependency_calls(journal: CleanupJournal, staged: tuple) -> None:
    demo, lab, _fs = staged
    base = demo.probe("/api/inventory")
    assert base.errors == 0 and base.p90_ms < 500, base

    with NetworkDelay(journal, lab, delay_ms=700):
        delayed = demo.probe("/api/inventory")
    assert delayed.p50_ms > base.p50_ms + 600, (base, delayed)

    with BandwidthLimit(journal, lab, rate_kbit=32):
        starved = demo.probe("/api/inventory")
    # ~5 KB answers trickle in for over a second (requests' timeout is per read, so they still succeed).
    assert starved.p50_ms > base.p50_ms + 800, (base, starved)

    with PacketLoss(journal, lab, probability=0.4):
        lossy = demo.probe("/api/inventory", n=10)
    assert lossy.errors > 0 or lossy.p90_ms > base.p90_ms + 150, (base, lossy)
    assert demo.probe("/api/inventory").errors == 0  # healthy again


def test_crash_takes_the_service_down_until_restarted(journal: CleanupJournal, staged: tuple) -> None:
    demo, _lab, _fs = staged
    old = demo.proc.pid if demo.proc else 0
    fault = ProcessCrash(
        journal, lambda: demo.proc.pid if demo.proc else None, f"{demo.url}/healthz", crash_loop=False,
        restart=demo.start, recover_timeout_s=60,
    )  # fmt: skip
    with fault as rec:
        assert demo.probe("/api/orders", n=2).errors == 2
    assert rec.took_effect and rec.effect["killed_pid"] == old
    assert rec.effect["recovered_after_s"] is not None
    assert demo.probe("/api/orders").errors == 0
