"""Loaders for real labelled datasets (SMD/ASD format, NAB format) and ``vigil datasets fetch``.

>>> from vigil.datasets import list_entities, load_smd_like          # doctest: +SKIP
>>> split = load_smd_like(data_dir / "smd", "machine-1-2")          # doctest: +SKIP
>>> split.train.shape, split.test.shape, split.labels.mean()        # doctest: +SKIP
"""

from vigil.datasets.catalog import DatasetInfo, discover, find_dataset
from vigil.datasets.fetch import SOURCES, fetch_dataset
from vigil.datasets.nab import NON_SERVER_SERIES, NabSeries, list_nab, load_nab
from vigil.datasets.smd import Segment, Split, column_names, list_entities, load_dataset, load_smd_like

__all__ = [
    "NON_SERVER_SERIES",
    "SOURCES",
    "DatasetInfo",
    "NabSeries",
    "Segment",
    "Split",
    "column_names",
    "discover",
    "fetch_dataset",
    "find_dataset",
    "list_entities",
    "list_nab",
    "load_dataset",
    "load_nab",
    "load_smd_like",
]
