"""Lock holder process for the database faults: ``python -m vigil.validation.dblock DB [options]``.

Prints ``locked`` once it holds the first exclusive lock. ``--period-ms 0`` holds it until killed (an
outage); otherwise it holds it ``--hold-ms`` of every ``--period-ms`` (contention). It exits by itself
after ``--deadline-s`` so a lost holder cannot block the database forever.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time


def _lock(db: str) -> sqlite3.Connection:
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    # EXCLUSIVE locking mode also shuts out readers in WAL mode, where BEGIN EXCLUSIVE alone would not.
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("db")
    parser.add_argument("--hold-ms", type=int, default=0)
    parser.add_argument("--period-ms", type=int, default=0)
    parser.add_argument("--deadline-s", type=float, default=120.0)
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.deadline_s
    conn = _lock(args.db)
    print("locked", flush=True)
    if args.period_ms <= 0:
        time.sleep(max(0.0, deadline - time.monotonic()))
        return 0
    while True:
        time.sleep(args.hold_ms / 1000)
        conn.execute("ROLLBACK")
        conn.close()  # in EXCLUSIVE locking mode only closing the connection releases the lock
        if time.monotonic() >= deadline:
            return 0
        time.sleep(max(0.0, (args.period_ms - args.hold_ms) / 1000))
        conn = _lock(args.db)


if __name__ == "__main__":
    sys.exit(main())
