"""What datasets are present locally: ``VIGIL_DATA_DIR`` first, then fetched copies in ``$VIGIL_HOME``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vigil.datasets.nab import list_nab
from vigil.datasets.smd import list_entities


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    format: str  # "smd-like" or "nab"
    path: Path
    entities: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "format": self.format, "path": str(self.path), "entities": list(self.entities)}


def discover(roots: Iterable[Path]) -> list[DatasetInfo]:
    """Every SMD/ASD-format or NAB-format folder directly under any of ``roots``; first root wins a name."""
    found: dict[str, DatasetInfo] = {}
    for root in roots:
        if not Path(root).is_dir():
            continue
        for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
            if folder.name in found:
                continue
            if entities := list_entities(folder):
                found[folder.name] = DatasetInfo(folder.name, "smd-like", folder, tuple(entities))
            elif series := list_nab(folder):
                found[folder.name] = DatasetInfo(folder.name, "nab", folder, tuple(series))
    return list(found.values())


def find_dataset(name: str, roots: Iterable[Path]) -> DatasetInfo | None:
    return next((d for d in discover(roots) if d.name == name), None)
