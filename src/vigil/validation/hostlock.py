"""One fault injector per host: CPU, memory, disk and process faults are host-wide, so two campaigns
(or a campaign and the fault tests) running at once would each see the other's faults as their own.

The lock is an ``flock`` on a file under ``/run/lock``: the kernel drops it when its holder dies,
SIGKILL included, so it can never be left behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vigil.errors import VigilError

# One path for the whole host, whatever VIGIL_HOME a campaign runs with: the faults are host-wide.
LOCK_PATH = Path("/run/lock/vigil-validate.lock")


@contextmanager
def host_lock(
    wait_s: float = 1200.0, say: Callable[[str], None] | None = None, path: Path = LOCK_PATH
) -> Iterator[float]:
    """Hold the host's fault-injection lock (``path``: another lock file, for tests of the lock
    itself); yields the seconds spent waiting for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(path, "a+") as fh:
        told = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - t0 > wait_s:
                    raise VigilError(
                        f"another fault campaign or fault test has held {path} for over {wait_s:.0f}s",
                        hint="wait for it to finish; faults on one host must not overlap",
                    ) from None
                if not told and say is not None:
                    fh.seek(0)
                    say(f"waiting for another fault injector on this host ({fh.read().strip() or 'unknown'})")
                    told = True
                time.sleep(1.0)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}\n")
        fh.flush()
        try:
            yield time.monotonic() - t0
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
