"""Only one fault injector per host: a second one waits, and gives up with a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from vigil.validation import hostlock


def _try_lock(lock: Path, wait_s: float) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from pathlib import Path; from vigil.validation.hostlock import host_lock\n"
        f"with host_lock(wait_s={wait_s}, say=print, path=Path({str(lock)!r})): print('got it')\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_second_injector_waits_then_gives_up(tmp_path: Path) -> None:
    lock = tmp_path / "validate.lock"
    with hostlock.host_lock(wait_s=1, path=lock):
        blocked = _try_lock(lock, wait_s=1.5)
    assert blocked.returncode != 0 and "got it" not in blocked.stdout
    assert "waiting for another fault injector" in blocked.stdout and f"pid {os.getpid()}" in blocked.stdout
    assert "another fault campaign" in blocked.stderr
    free = _try_lock(lock, wait_s=1.5)  # released on exit
    assert free.returncode == 0 and "got it" in free.stdout
