"""The fault contract: a context manager that injects for real, proves it, and always cleans up.

::

    with CpuSaturation(journal, max_duration_s=60) as record:
        time.sleep(30)           # the fault is active; record.effect holds the measured evidence
    record.end, record.cleanup   # set on exit, also on Ctrl-C or an exception

Each resource is journaled before it is created (see :mod:`vigil.validation.journal`), so a killed
run is cleaned up by the next one.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from vigil.errors import DependencyMissing, VigilError
from vigil.validation import procs
from vigil.validation.journal import CleanupJournal


class FaultError(VigilError, RuntimeError):
    """A fault could not be injected or did not take effect."""

    exit_code = 8


@dataclass
class FaultRecord:
    """Ground truth for one fault instance: what ran, when, and what it measurably did."""

    type: str
    start: float = 0.0  # unix seconds the injection began
    end: float = 0.0  # unix seconds cleanup finished (the fault is over)
    command: str = ""
    effect: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    cleanup: list[dict[str, Any]] = field(default_factory=list)
    took_effect: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Fault:
    """Base class; subclasses implement :meth:`inject` and :meth:`measure` (and :meth:`measure_baseline`)."""

    type: ClassVar[str] = "fault"

    def __init__(self, journal: CleanupJournal, *, max_duration_s: float = 120.0) -> None:
        self.journal = journal
        # A hard cap enforced by the injected tool itself (stress-ng --timeout, holder deadlines), so even
        # a fault whose journal is lost cannot outlive the campaign by much.
        self.max_duration_s = max_duration_s
        self.record = FaultRecord(type=self.type)
        self._undo: list[tuple[str, dict[str, Any]]] = []
        self._commands: list[str] = []
        self._spawned: list[subprocess.Popen] = []

    # --- for subclasses -------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {}

    def measure_baseline(self) -> dict[str, Any]:
        return {}

    def inject(self) -> None:
        raise NotImplementedError

    def measure(self) -> dict[str, Any]:
        """Evidence the fault is in effect; must set ``took_effect`` in the returned dict."""
        raise NotImplementedError

    def journaled(self, action: dict[str, Any]) -> str:
        """Journal an undo action now (before creating what it undoes); it runs on exit in reverse order."""
        entry_id = self.journal.add(self.type, action)
        self._undo.append((entry_id, action))
        return entry_id

    def sh(self, argv: Sequence[str], *, record: bool = True, check: bool = True, timeout: float = 30.0) -> str:
        """Run one command; recorded (as a shell line) in the fault's ``command`` unless ``record=False``."""
        line = shlex.join(argv)
        if record:
            self._commands.append(line)
        try:
            proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise DependencyMissing(f"{argv[0]} is not installed", hint="run scripts/setup.sh") from None
        if check and proc.returncode != 0:
            raise FaultError(f"{self.type}: `{line}` failed: {(proc.stderr or proc.stdout).strip()[:300]}")
        return proc.stdout

    def spawn(self, argv: Sequence[str], *, record: bool = True, **kwargs: Any) -> subprocess.Popen:
        """Start a long-running injector in its own session, journaled by marker before it starts."""
        token = procs.new_token()
        entry = self.journaled({"kind": "session", "token": token, "argv": list(argv)})
        if record:
            self._commands.append(shlex.join(argv))
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        try:
            proc = procs.spawn(argv, token, **kwargs)
        except FileNotFoundError:
            raise DependencyMissing(f"{argv[0]} is not installed", hint="run scripts/setup.sh") from None
        self.journal.update(
            entry,
            {
                "kind": "session",
                "token": token,
                "sid": proc.pid,
                "start": procs.start_time(proc.pid) or 0,
                "argv": list(argv),
            },
        )
        proc.vigil_token = token  # type: ignore[attr-defined]
        self._spawned.append(proc)
        return proc

    # --- context manager ------------------------------------------------------------------------------
    def __enter__(self) -> FaultRecord:
        self.record.params = self.params()
        try:
            self.record.baseline = self.measure_baseline()
            self.record.start = time.time()
            self.inject()
            self.record.command = " && ".join(self._commands)
            try:
                effect = self.measure()
            except Exception as exc:  # the fault is in place; a failed check of it must not end the campaign
                effect = {"took_effect": False, "measure_error": f"{type(exc).__name__}: {exc}"[:500]}
            self.record.took_effect = bool(effect.pop("took_effect", False))
            self.record.effect = effect
        except BaseException:
            self.cleanup()
            raise
        return self.record

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        results = []
        while self._undo:
            entry_id, action = self._undo.pop()
            res = self.journal.undo(entry_id, action)
            results.append({"action": action.get("kind"), "ok": res.ok, "detail": res.detail})
        # The journal's undo killed and reaped their sessions by pid, which their Popen objects cannot see:
        # the wait (at once) records the exit, so none warns of a process still running when collected,
        # and their pipes are closed here rather than by the garbage collector.
        while self._spawned:
            proc = self._spawned.pop()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        self.record.command = self.record.command or " && ".join(self._commands)
        self.record.cleanup = results
        self.record.end = time.time()
