"""Pid records identify processes exactly; termination reaches process groups."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

from vigil.stack import procs


def _sleeper(group: bool = True) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=group)


def _live_members(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,pgid=,stat="], capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines()]
    return [int(r[0]) for r in rows if int(r[1]) == pgid and not r[2].startswith("Z")]


def test_record_round_trip_and_liveness(tmp_path):
    proc = _sleeper()
    try:
        rec = procs.record_for("x", proc.pid, ["sleep"])
        procs.write_record(tmp_path, rec)
        assert procs.read_record(tmp_path, "x") == rec
        assert procs.is_alive(rec)
    finally:
        proc.kill()
        proc.wait()
    assert not procs.is_alive(rec)


def test_a_reused_pid_is_not_our_process():
    proc = _sleeper()
    try:
        rec = procs.record_for("x", proc.pid)
        stranger = dataclasses.replace(rec, starttime=rec.starttime - 1)
        assert not procs.is_alive(stranger)
        procs.terminate([stranger], grace_s=0.5)
        assert proc.poll() is None  # the stranger record must not have killed it
    finally:
        proc.kill()
        proc.wait()


def test_terminate_stops_the_whole_group(tmp_path):
    # A parent that starts a grandchild in its group, like gunicorn's master and worker.
    code = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    time.sleep(0.5)
    assert len(_live_members(proc.pid)) == 2
    procs.terminate([procs.record_for("x", proc.pid)], grace_s=5)
    proc.wait(timeout=5)
    deadline = time.monotonic() + 5
    while _live_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _live_members(proc.pid) == []


def test_unreadable_pidfile_reads_as_none(tmp_path):
    (tmp_path / "bad.pid").write_text("{not json")
    assert procs.read_record(tmp_path, "bad") is None
    assert procs.all_records(tmp_path) == []
