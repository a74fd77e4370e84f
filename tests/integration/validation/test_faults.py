"""Each fault injected for real for a few seconds: effect measured, then everything removed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, wait_http
from tests.integration.validation.conftest import assert_clean, link_exists, mounts_under, netns_exists
from vigil.validation import procs
from vigil.validation.database import DatabaseContention, DatabaseOutage
from vigil.validation.host import CpuSaturation, DiskIoSaturation, MemoryPressure
from vigil.validation.journal import CleanupJournal
from vigil.validation.network import BandwidthLimit, NetLab, NetworkDelay, PacketLoss
from vigil.validation.process import ProcessCrash
from vigil.validation.storage import DiskFull, SmallFilesystem

pytestmark = pytest.mark.integration


def _snapshot(journal: CleanupJournal) -> list:
    return journal.open_entries(include_live=True)


def test_cpu_saturation_burns_cores_and_leaves_no_stressor(journal: CleanupJournal, vigil_home: Path) -> None:
    fault = CpuSaturation(journal, max_duration_s=30)
    with fault as rec:
        entries = _snapshot(journal)
        assert len(fault.workers()) >= 2  # the stress-ng parent and its workers
    assert rec.took_effect, rec.effect
    assert rec.effect["stress_cores"] >= 0.2 and rec.effect["host_cpu_busy"] >= 0.9
    assert rec.command.startswith("stress-ng --cpu ")
    assert rec.start < rec.end
    assert_clean(vigil_home, entries)
    assert journal.open_entries(include_live=True) == []


def test_memory_pressure_holds_the_requested_memory(journal: CleanupJournal, vigil_home: Path) -> None:
    with MemoryPressure(journal, nbytes=256 << 20, max_duration_s=30) as rec:
        entries = _snapshot(journal)
    assert rec.took_effect, rec.effect
    assert rec.effect["stress_rss_bytes"] >= 200 << 20
    assert_clean(vigil_home, entries)


def test_disk_io_saturation_writes_to_disk(journal: CleanupJournal, vigil_home: Path) -> None:
    target = vigil_home / "io"
    with DiskIoSaturation(journal, target, hdd_bytes="64M", max_duration_s=30) as rec:
        entries = _snapshot(journal)
    assert rec.took_effect, rec.effect
    assert rec.effect["stress_write_bytes_per_s"] > 1e6
    assert_clean(vigil_home, entries)
    assert list(target.iterdir()) == []  # stress-ng's temp files are gone too


@pytest.mark.parametrize("kind", ["ext4", "tmpfs"])
def test_disk_full_makes_writes_fail_then_frees_the_space(journal: CleanupJournal, vigil_home: Path, kind: str) -> None:
    mnt = vigil_home / "small"
    with SmallFilesystem(journal, mnt, size_mb=16, kind=kind) as fs:
        assert fs.took_effect and mounts_under(vigil_home) == [str(mnt.resolve())]
        db = mnt / "orders.db"
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE t (x BLOB)")
        conn.close()
        with DiskFull(journal, mnt) as rec:
            assert rec.took_effect, rec.effect
            assert rec.effect["write_probe"] == "ENOSPC"
            assert rec.effect["free_bytes"] < 64 * 1024 < rec.baseline["free_bytes"]
            # The service's own kind of write fails for real.
            conn = sqlite3.connect(db)
            with pytest.raises(sqlite3.OperationalError):
                conn.execute("INSERT INTO t VALUES (?)", (os.urandom(1 << 20),))
                conn.commit()
            conn.close()
        assert list(mnt.glob(".vigil-fill-*")) == []
        assert fs.effect["free_bytes"] - (16 << 20) // 8 < DiskFull(journal, mnt).measure_baseline()["free_bytes"]
        entries = _snapshot(journal)
    assert_clean(vigil_home, entries)
    assert not (vigil_home / ".small.img").exists()


def test_disk_full_refuses_a_big_filesystem(journal: CleanupJournal, vigil_home: Path) -> None:
    from vigil.validation.base import FaultError

    with pytest.raises(FaultError, match="more than"), DiskFull(journal, vigil_home):
        pass
    assert list(vigil_home.glob(".vigil-fill-*")) == []


def _make_db(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")  # as the demo service does
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    return path


def test_db_outage_locks_out_readers_and_writers(journal: CleanupJournal, vigil_home: Path) -> None:
    db = _make_db(vigil_home / "orders.db")
    with DatabaseOutage(journal, db, max_duration_s=30) as rec:
        entries = _snapshot(journal)
        conn = sqlite3.connect(db, timeout=0.2)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            conn.execute("INSERT INTO t VALUES (2)")
        conn.close()
    assert rec.took_effect and rec.effect["read_errors"] == rec.effect["reads"]
    assert rec.baseline["read_errors"] == 0
    assert_clean(vigil_home, entries)
    with sqlite3.connect(db, timeout=0.2) as conn:  # usable again right after cleanup
        conn.execute("INSERT INTO t VALUES (3)")
    conn.close()


def test_an_overlapping_pair_starts_its_second_fault_into_the_first(journal: CleanupJournal, vigil_home: Path) -> None:
    """The full profile's overlaps, shortened: a DB outage, and a CPU fault from a thread of its own
    into it; each took effect, names the other, and nothing is left behind."""
    from dataclasses import replace

    from vigil.config import load_settings
    from vigil.validation.faults import Stage, run_entry
    from vigil.validation.profiles import PROFILES

    db = _make_db(vigil_home / "orders.db")
    stage = Stage(journal, load_settings(home=vigil_home), vigil_home, db, None, vigil_home / "io")  # type: ignore[arg-type]
    outage, cpu = run_entry(
        "db_outage+cpu_saturation", stage, replace(PROFILES["full"], fault_s=5.0, overlap_offset_s=2.0)
    )
    assert (outage.type, outage.params["overlaps"], cpu.type, cpu.params["overlaps"]) == (
        "db_outage", "cpu_saturation", "cpu_saturation", "db_outage")  # fmt: skip
    assert outage.start + 2.0 <= cpu.start < outage.end < cpu.end
    assert outage.took_effect and cpu.took_effect, (outage.effect, cpu.effect)
    assert journal.open_entries(include_live=True) == []


def test_db_contention_slows_queries_without_failing_them(journal: CleanupJournal, vigil_home: Path) -> None:
    db = _make_db(vigil_home / "orders.db")
    with DatabaseContention(journal, db, hold_ms=150, period_ms=250, max_duration_s=30) as rec:
        entries = _snapshot(journal)
    assert rec.took_effect, rec.effect
    assert rec.effect["read_errors"] == 0
    assert rec.effect["read_mean_ms"] > 5 * max(rec.baseline["read_mean_ms"], 1.0)
    assert_clean(vigil_home, entries)


def test_network_faults_on_the_dependency_link(journal: CleanupJournal, vigil_home: Path) -> None:
    name = f"t{os.getpid() % 100000}"
    lab = NetLab(journal, vigil_home / "run", name=name)
    with lab as env:
        assert env.took_effect and netns_exists(lab.netns) and link_exists(lab.host_if)
        with PacketLoss(journal, lab, probability=0.3) as loss:
            pass
        assert loss.took_effect, loss.effect
        assert 0.1 <= loss.effect["loss_rate"] <= 0.6
        assert "statistic --mode random --probability 0.3" in loss.command
        rules = subprocess.run(lab.in_ns("iptables", "-S", "INPUT"), capture_output=True, text=True).stdout
        assert "vigil-val" not in rules

        with BandwidthLimit(journal, lab, rate_kbit=256) as bw:
            pass
        assert bw.took_effect, bw.effect
        assert bw.effect["throughput_kbit_s"] < 400 < bw.baseline["throughput_kbit_s"]
        qdisc = subprocess.run(lab.in_ns("tc", "qdisc", "show", "dev", lab.ns_if), capture_output=True, text=True)
        assert "tbf" not in qdisc.stdout

        with NetworkDelay(journal, lab, delay_ms=300) as delay:
            pass
        assert delay.took_effect, delay.effect
        assert 250 <= delay.effect["added_p50_ms"] <= 600
        t0 = time.perf_counter()
        requests.get(f"{lab.url}/inventory/x", timeout=2).raise_for_status()
        assert time.perf_counter() - t0 < 0.2  # the delay is gone
        entries = _snapshot(journal)
    assert_clean(vigil_home, entries, netns=lab.netns, links=(lab.host_if,))


def test_process_crash_takes_the_target_down(journal: CleanupJournal, vigil_home: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=vigil_home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url)
        fault = ProcessCrash(journal, lambda: server.pid, url, crash_loop=False, recover_timeout_s=1)
        with fault as rec:
            pass
        assert rec.took_effect, rec.effect
        assert rec.effect["killed_pid"] == server.pid
        assert rec.baseline["errors"] == 0 and rec.effect["probe"]["errors"] == 3
        assert server.wait(timeout=5) == -9
        assert rec.effect["recovered_after_s"] is None  # nothing restarts it here
    finally:
        if procs.is_alive(server.pid):
            server.kill()
        server.wait(timeout=5)
