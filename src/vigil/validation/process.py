"""Service process crash: the watched service is SIGKILLed (and, in a crash loop, killed again on restart)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from vigil.validation import measure, procs
from vigil.validation.base import Fault, FaultError
from vigil.validation.journal import CleanupJournal


class ProcessCrash(Fault):
    """Kill the process that serves ``probe_url``; with ``crash_loop`` keep killing each restart until exit.

    ``find_pid`` returns the current pid of the service (e.g. from the stack's pid file), so a crash
    loop follows the supervisor's restarts. There is nothing to undo: a supervisor restarts the
    service, and on exit the fault waits up to ``recover_timeout_s`` for ``probe_url`` to answer
    again and records how long that took.
    """

    type = "process_crash"

    def __init__(
        self,
        journal: CleanupJournal,
        find_pid: Callable[[], int | None],
        probe_url: str,
        *,
        crash_loop: bool = True,
        restart: Callable[[], None] | None = None,
        recover_timeout_s: float = 60.0,
        max_duration_s: float = 120.0,
    ) -> None:
        super().__init__(journal, max_duration_s=max_duration_s)
        self.find_pid = find_pid
        self.probe_url = probe_url
        self.crash_loop = crash_loop
        # What an operator would do after the incident (e.g. `vigil up`, which restarts what is down now).
        self.restart = restart
        self.recover_timeout_s = recover_timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.kills: list[tuple[float, int]] = []

    def params(self) -> dict[str, Any]:
        return {"probe_url": self.probe_url, "crash_loop": self.crash_loop}

    def measure_baseline(self) -> dict[str, Any]:
        return measure.http_probe(self.probe_url, n=3).as_dict()

    def _kill(self, pid: int) -> None:
        # Kill the whole process group too: a gunicorn master's workers would otherwise keep serving.
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.kills.append((time.time(), pid))
        for child in procs.session_members(pid):
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _loop(self, first: int) -> None:
        deadline = time.monotonic() + self.max_duration_s
        last = first
        while not self._stop.wait(0.05) and time.monotonic() < deadline:
            pid = self.find_pid()
            if pid and pid != last and procs.is_alive(pid):
                self._kill(pid)
                last = pid

    def inject(self) -> None:
        pid = self.find_pid()
        if not pid or not procs.is_alive(pid):
            raise FaultError("process_crash: the service process is not running")
        self._commands.append(f"kill -KILL {pid}")
        self._kill(pid)
        if self.crash_loop:
            self._commands.append("# and kill -KILL each restarted pid until the fault ends")
            self._thread = threading.Thread(target=self._loop, args=(pid,), daemon=True)
            self._thread.start()

    def measure(self) -> dict[str, Any]:
        time.sleep(0.3)
        probe = measure.http_probe(self.probe_url, n=3, timeout_s=1.0)
        return {"probe": probe.as_dict(), "killed_pid": self.kills[0][1], "took_effect": probe.errors == probe.requests}

    def cleanup(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.restart is not None and self.kills:
            try:
                self.restart()
            except Exception as exc:  # noqa: BLE001 - recovery is measured below either way
                self.record.effect["restart_error"] = str(exc)
        t0 = time.monotonic()
        recovered = None
        while time.monotonic() - t0 < self.recover_timeout_s:
            if measure.http_probe(self.probe_url, n=1, timeout_s=1.0).errors == 0:
                recovered = round(time.monotonic() - t0, 2)
                break
            time.sleep(0.2)
        super().cleanup()
        self.record.effect["kills"] = len(self.kills)
        self.record.effect["recovered_after_s"] = recovered
