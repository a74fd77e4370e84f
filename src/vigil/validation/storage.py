"""Disk-full faults on a small real filesystem (loop-mounted ext4, or tmpfs) the watched service writes to."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from vigil.validation import measure, procs
from vigil.validation.base import Fault, FaultError
from vigil.validation.journal import CleanupJournal


def is_mountpoint(path: Path) -> bool:
    target = str(Path(path).resolve())
    for line in Path("/proc/self/mounts").read_text().splitlines():
        if line.split()[1] == target:
            return True
    return False


class SmallFilesystem(Fault):
    """Mount a small ext4 image (or tmpfs) at ``mountpoint``: the stage for :class:`DiskFull`.

    Not a fault by itself; it shares the fault machinery so that the mount, the loop device and the
    image are journaled and removed like any injected resource.
    """

    type = "small_filesystem"

    def __init__(
        self,
        journal: CleanupJournal,
        mountpoint: Path,
        *,
        size_mb: int = 64,
        kind: str = "ext4",
        image_dir: Path | None = None,
    ) -> None:
        super().__init__(journal)
        if kind not in ("ext4", "tmpfs"):
            raise FaultError(f"unknown filesystem kind {kind!r}; use ext4 or tmpfs")
        self.mountpoint = Path(mountpoint)
        self.size_mb = size_mb
        self.kind = kind
        self.image = (image_dir or self.mountpoint.parent) / f".{self.mountpoint.name}.img"

    def params(self) -> dict[str, Any]:
        return {"mountpoint": str(self.mountpoint), "size_mb": self.size_mb, "kind": self.kind}

    def inject(self) -> None:
        if is_mountpoint(self.mountpoint):
            raise FaultError(f"{self.mountpoint} is already a mount point", hint="run vigil validate --cleanup")
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        if self.kind == "tmpfs":
            self.journaled({"kind": "argv", "argv": ["umount", "-l", str(self.mountpoint)]})
            self.sh(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0755", "tmpfs", str(self.mountpoint)])
            return
        self.journaled({"kind": "rm", "path": str(self.image)})
        self.sh(["fallocate", "-l", f"{self.size_mb}M", str(self.image)])
        # -m 0: no root-reserved blocks, so "full" means full for every writer, root included.
        self.sh(["mkfs.ext4", "-q", "-F", "-m", "0", str(self.image)])
        self.journaled(
            {"kind": "argv", "argv": ["sh", "-c", f"losetup -j '{self.image}' | cut -d: -f1 | xargs -r -n1 losetup -d"]}
        )
        self.journaled({"kind": "argv", "argv": ["umount", "-l", str(self.mountpoint)]})
        self.sh(["mount", "-o", "loop", str(self.image), str(self.mountpoint)])

    def measure(self) -> dict[str, Any]:
        return {"free_bytes": measure.free_bytes(self.mountpoint), "took_effect": is_mountpoint(self.mountpoint)}


def _write_probe(directory: Path) -> str:
    """Try a small real write; returns ``"ok"`` or the OS error name (``ENOSPC`` when full)."""
    path = directory / f".vigil-probe-{os.getpid()}"
    try:
        with open(path, "wb") as fh:
            fh.write(os.urandom(256 * 1024))
            fh.flush()
            os.fsync(fh.fileno())
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    finally:
        path.unlink(missing_ok=True)


class DiskFull(Fault):
    """Fill the filesystem holding ``directory`` with ``fallocate`` until writes fail with ENOSPC."""

    type = "disk_full"

    def __init__(self, journal: CleanupJournal, directory: Path, *, max_fill_bytes: int = 1 << 30) -> None:
        super().__init__(journal)
        self.directory = Path(directory)
        # Refuse to fill a big shared disk by mistake: the fault is meant for a small dedicated filesystem.
        self.max_fill_bytes = max_fill_bytes
        self._fillers: list[Path] = []

    def params(self) -> dict[str, Any]:
        return {"directory": str(self.directory)}

    def measure_baseline(self) -> dict[str, Any]:
        free = measure.free_bytes(self.directory)
        if free > self.max_fill_bytes:
            raise FaultError(
                f"disk_full: {self.directory} has {free} bytes free, more than the {self.max_fill_bytes} allowed",
                hint="point it at a small dedicated filesystem (SmallFilesystem)",
            )
        return {"free_bytes": free, "write_probe": _write_probe(self.directory)}

    def inject(self) -> None:
        for _ in range(4):
            free = measure.free_bytes(self.directory)
            if free < 4096:
                break
            filler = self.directory / f".vigil-fill-{procs.new_token()}"
            self.journaled({"kind": "rm", "path": str(filler)})
            self._fillers.append(filler)
            # ext4 needs a few blocks of its own for the extent tree; step down until fallocate fits.
            for size in (free, free - (256 << 10), free - (1 << 20), free // 2):
                if size <= 0:
                    continue
                try:
                    self.sh(["fallocate", "-l", str(size), str(filler)], record=False)
                except FaultError:
                    filler.unlink(missing_ok=True)
                    continue
                self._commands.append(f"fallocate -l {size} {filler}")
                break

    def measure(self) -> dict[str, Any]:
        free = measure.free_bytes(self.directory)
        probe = _write_probe(self.directory)
        return {"free_bytes": free, "write_probe": probe, "took_effect": probe == "ENOSPC"}
