"""SMD/ASD-format folders: ``train/``, ``test/``, ``test_label/``, ``interpretation_label/``.

Both datasets store one headerless CSV per entity (machine or server) in each folder, one row per
time step and no timestamps. They differ in one detail that silently shifts every segment by one
row if ignored: SMD's interpretation segments end *exclusively* (a Python slice), ASD's end
*inclusively*. Both READMEs in ../shared/data state it and it was checked against ``test_label``.
:class:`Segment` always holds the exclusive form.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.errors import DataError, NotFound

SPLIT_DIRS = ("train", "test", "test_label")

# name -> (row spacing in seconds, interpretation segments end inclusively)
KNOWN_LAYOUTS: dict[str, tuple[float, bool]] = {"smd": (60.0, False), "asd": (300.0, True)}


@dataclass(frozen=True)
class Segment:
    """One labelled anomaly in the test half: rows ``[start, end)`` and the columns it shows in."""

    start: int
    end: int  # exclusive
    dims: tuple[int, ...]  # 0-based column positions
    kind: str = ""  # ASD's anomaly_type (metric / temporal / metric-temporal); empty when unknown


@dataclass(frozen=True)
class Split:
    """One entity of an SMD/ASD-format dataset.

    ``train`` and ``test`` have a RangeIndex of steps (no timestamps were published) and the same
    columns; ``labels[i]`` is 1 when test row ``i`` is anomalous. The train half is unlabelled and
    may contain anomalies.
    """

    dataset: str
    entity: str
    train: pd.DataFrame
    test: pd.DataFrame
    labels: np.ndarray  # int8, one per test row
    interpretation: tuple[Segment, ...] = ()
    step_s: float = 60.0
    columns: tuple[str, ...] = field(default=())


def column_names(n: int) -> list[str]:
    """Neutral column names: the authors never published which metric each column is."""
    return [f"m{i:02d}" for i in range(n)]


def list_entities(dataset: str | Path, data_dir: Path | None = None) -> list[str]:
    """Entities (file stems) present in every one of train/, test/ and test_label/.

    ``dataset`` is a folder, or a dataset name looked up under ``data_dir``.
    """
    root = _resolve(dataset, data_dir)
    stems = [{p.stem for p in (root / sub).glob("*.txt")} for sub in SPLIT_DIRS]
    return sorted(set.intersection(*stems)) if all((root / sub).is_dir() for sub in SPLIT_DIRS) else []


def load_smd_like(
    directory: str | Path,
    entity: str,
    *,
    inclusive_end: bool | None = None,
    step_s: float | None = None,
) -> Split:
    """Load one entity of an SMD/ASD-format folder.

    Parameters
    ----------
    directory : folder holding ``train/``, ``test/``, ``test_label/`` (``interpretation_label/``
        optional).
    entity : file stem, e.g. ``machine-1-2`` or ``omi-1``.
    inclusive_end : whether interpretation segments end inclusively; by default taken from the
        folder name (``asd`` -> True, otherwise False as in SMD).
    step_s : spacing of rows in seconds; by default from the folder name (SMD 60, ASD 300).
    """
    root = Path(directory)
    name = root.name.lower()
    default_step, default_inclusive = KNOWN_LAYOUTS.get(name, (60.0, False))
    inclusive = default_inclusive if inclusive_end is None else inclusive_end
    files = {sub: root / sub / f"{entity}.txt" for sub in SPLIT_DIRS}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        known = ", ".join(list_entities(root)) or "none"
        raise NotFound(f"entity {entity!r} not found in {root} (missing {missing[0]})", hint=f"known: {known}")

    train = _read_matrix(files["train"])
    test = _read_matrix(files["test"])
    if train.shape[1] != test.shape[1]:
        raise DataError(f"{entity}: train has {train.shape[1]} columns but test has {test.shape[1]}")
    cols = column_names(train.shape[1])
    train.columns = test.columns = cols
    labels = np.loadtxt(files["test_label"], dtype=np.int8, ndmin=1)
    if labels.shape[0] != len(test):
        raise DataError(f"{entity}: {labels.shape[0]} test labels for {len(test)} test rows")

    kinds = _anomaly_types(root, entity)
    interp_file = root / "interpretation_label" / f"{entity}.txt"
    segments = _read_segments(interp_file, inclusive, kinds) if interp_file.is_file() else ()
    return Split(
        dataset=name,
        entity=entity,
        train=train,
        test=test,
        labels=labels,
        interpretation=segments,
        step_s=step_s or default_step,
        columns=tuple(cols),
    )


def load_dataset(dataset: str, entity: str, data_dir: Path | None = None) -> Split:
    """:func:`load_smd_like` by dataset name (``smd``, ``asd``) under ``data_dir``."""
    return load_smd_like(_resolve(dataset, data_dir), entity)


def _resolve(dataset: str | Path, data_dir: Path | None) -> Path:
    path = Path(dataset)
    if path.is_dir():
        return path
    root = path if data_dir is None else Path(data_dir) / str(dataset)
    if not root.is_dir():
        where = f" under {data_dir}" if data_dir is not None else " (a name needs the data folder it is in)"
        raise NotFound(f"dataset {dataset!r} not found{where}", hint="set VIGIL_DATA_DIR or run `vigil datasets`")
    return root


def _read_matrix(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, header=None, dtype=np.float64)
    if frame.empty:
        raise DataError(f"{path} holds no rows")
    frame.index = pd.RangeIndex(len(frame), name="step")
    return frame


def _read_segments(path: Path, inclusive: bool, kinds: dict[str, str]) -> tuple[Segment, ...]:
    segments = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            span, dims = line.split(":", 1)
            start_s, end_s = span.split("-", 1)
            start, end = int(start_s), int(end_s)
            cols = tuple(int(d) - 1 for d in dims.split(",") if d.strip())
        except ValueError:
            raise DataError(f"{path}:{lineno}: expected 'start-end:dim,dim,...', got {line!r}") from None
        segments.append(Segment(start, end + 1 if inclusive else end, cols, kinds.get(span, "")))
    return tuple(segments)


def _anomaly_types(root: Path, entity: str) -> dict[str, str]:
    path = root / "anomaly_type.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        return {r["anomaly_segment"]: r["anomaly_type"] for r in csv.DictReader(fh) if r.get("dataset") == entity}
