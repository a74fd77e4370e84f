"""Child process for the interruption tests: injects one fault of each resource kind and waits.

``python -m tests.integration.validation.injector NETLAB_NAME`` (``VIGIL_HOME`` set by the test).
Prints ``ready`` once every fault is in place, then sleeps until it is killed or interrupted.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from vigil.validation.database import DatabaseOutage
from vigil.validation.host import CpuSaturation
from vigil.validation.journal import CleanupJournal
from vigil.validation.network import BandwidthLimit, NetLab, NetworkDelay, PacketLoss
from vigil.validation.signals import interrupt_on_terminate
from vigil.validation.storage import DiskFull, SmallFilesystem


def main() -> None:
    home = Path(os.environ["VIGIL_HOME"])
    journal = CleanupJournal.for_home(home)
    with interrupt_on_terminate(), ExitStack() as stack:
        stack.enter_context(CpuSaturation(journal, workers=1, load_pct=30, max_duration_s=90))
        mnt = home / "small"
        stack.enter_context(SmallFilesystem(journal, mnt, size_mb=16))
        db = mnt / "orders.db"
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE t (x)")
        conn.close()
        stack.enter_context(DatabaseOutage(journal, db, max_duration_s=90))
        stack.enter_context(DiskFull(journal, mnt))
        lab = NetLab(journal, home / "run", name=sys.argv[1])
        stack.enter_context(lab)
        stack.enter_context(PacketLoss(journal, lab, probability=0.2))
        stack.enter_context(BandwidthLimit(journal, lab, rate_kbit=512))
        stack.enter_context(NetworkDelay(journal, lab, delay_ms=100))
        print("ready", flush=True)
        time.sleep(120)


if __name__ == "__main__":
    main()
