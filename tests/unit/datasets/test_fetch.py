from __future__ import annotations

import io
import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest

from vigil.datasets import SOURCES, fetch_dataset
from vigil.datasets.fetch import _not_lfs_pointer, _pickle_to_csv
from vigil.errors import DataError, NotFound, UpstreamUnavailable


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unknown_dataset() -> None:
    with pytest.raises(NotFound, match="known: asd, nab, smd"):
        fetch_dataset("kdd99", Path("/nonexistent"))


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_unreachable_source_is_one_upstream_line(name: str, tmp_path: Path) -> None:
    port = _closed_port()
    with pytest.raises(UpstreamUnavailable) as info:
        fetch_dataset(name, tmp_path, timeout_s=2, url_rewrite=lambda u: f"http://127.0.0.1:{port}/{u.split('/')[-1]}")
    assert "\n" not in str(info.value)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_asd_pickle_converts_to_the_shared_csv(data_dir: Path) -> None:
    lines = (data_dir / "asd" / "test" / "omi-3.txt").read_text().splitlines()[:200]
    matrix = np.array([[float(x) for x in line.split(",")] for line in lines], dtype=np.float32)
    assert _pickle_to_csv(pickle.dumps(matrix)).decode().splitlines() == lines
    labels = np.loadtxt(data_dir / "asd" / "test_label" / "omi-3.txt")[:200]
    assert _pickle_to_csv(pickle.dumps(labels)).decode().split() == [str(int(v)) for v in labels]


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.getcwd, ())


def test_pickle_with_code_is_refused() -> None:
    with pytest.raises(DataError, match="refusing to unpickle"):
        _pickle_to_csv(pickle.dumps(_Exploit()))


def test_lfs_pointer_is_detected() -> None:
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n"
    with pytest.raises(UpstreamUnavailable, match="git-LFS pointer"):
        _not_lfs_pointer(pointer)
    assert _not_lfs_pointer(io.BytesIO(b"0.1,0.2\n").read()) == b"0.1,0.2\n"
