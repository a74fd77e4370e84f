"""Lowering Vigil's own priority: the kernel then accounts its work as niced CPU time, which the
host's ``cpu_busy`` leaves out (real threads, real /proc)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import os, threading, time
    import numpy as np  # starts numpy's BLAS pool at full priority
    from vigil.procfs import lower_priority, stat_fields

    def nice_of(tid):
        return int(stat_fields(f"{os.getpid()}/task/{tid}")[16])  # field 19: nice

    def run(out):
        out.append(lower_priority(3))
        out.append(nice_of(threading.get_native_id()))
        out.append(str(threading.get_native_id()))

    out = []
    t = threading.Thread(target=run, args=(out,))
    t.start(); t.join()
    # A joined thread stays listed until the kernel has reaped it; niced once more it would read +7.
    deadline = time.monotonic() + 10
    while out[2] in os.listdir("/proc/self/task") and time.monotonic() < deadline:
        time.sleep(0.01)
    print(out[0], out[1], nice_of(threading.get_native_id()))
    changed = lower_priority(4, whole_process=True)
    tasks = os.listdir("/proc/self/task")
    print(changed, len(tasks), sorted({nice_of(t) for t in tasks}))
    """
)


def test_one_thread_or_the_whole_process_is_niced() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60)
    thread, process = out.stdout.splitlines()
    base = os.getpriority(os.PRIO_PROCESS, 0)  # the child starts at the test's own nice value
    # The retrainer's way: its own thread only.
    assert thread.split() == ["1", str(min(19, base + 3)), str(base)]
    changed, tasks, nice = process.split(maxsplit=2)
    # Every thread listed then, the BLAS pool too.
    assert int(changed) == int(tasks) >= 1 and nice == f"[{min(19, base + 4)}]"  # vigil train's way
