"""Turn SIGINT, SIGTERM and SIGHUP into KeyboardInterrupt so every fault's ``__exit__`` runs on a polite kill.

SIGINT is set explicitly too: a process started from a non-interactive shell's background job (a CI
runner, ``nohup ... &``) inherits it as ignored, and Python then never raises KeyboardInterrupt.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def interrupt_on_terminate() -> Iterator[None]:
    """Only SIGKILL is left to the journal; every catchable stop unwinds the faults in this process."""
    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
