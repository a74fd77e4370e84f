"""Download the public datasets from their original sources into the layout the loaders read.

Sources are pinned to the commits ../shared/data/*/README.md name where a full hash is known, so a
fetched copy matches the shared one. SMD's train/test matrices live in git-LFS upstream, hence the
``media.githubusercontent.com`` host; ASD upstream ships numpy pickles, which are read with an
unpickler that only admits numpy arrays, because a pickle from the network can otherwise run code.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests

from vigil.errors import DataError, NotFound, UpstreamUnavailable

NAB_BASE = "https://raw.githubusercontent.com/numenta/NAB/ea702d75cc2258d9d7dd35ca8e5e2539d71f3140"
SMD_RAW = "https://raw.githubusercontent.com/NetManAIOps/OmniAnomaly/master/ServerMachineDataset"
SMD_LFS = "https://media.githubusercontent.com/media/NetManAIOps/OmniAnomaly/master/ServerMachineDataset"
ASD_BASE = "https://raw.githubusercontent.com/zhhlee/InterFusion/4d6e3fc6d6354a0e9a2d7e8f6e1ffd0812424352/data"

NAB_FILES = [
    *(
        f"realAWSCloudwatch/{n}.csv"
        for n in (
            "ec2_cpu_utilization_24ae8d ec2_cpu_utilization_53ea38 ec2_cpu_utilization_5f5533 "
            "ec2_cpu_utilization_77c1ca ec2_cpu_utilization_825cc2 ec2_cpu_utilization_ac20cd "
            "ec2_cpu_utilization_c6585a ec2_cpu_utilization_fe7f93 ec2_disk_write_bytes_1ef3de "
            "ec2_disk_write_bytes_c0d644 ec2_network_in_257a54 ec2_network_in_5abac7 elb_request_count_8c0756 "
            "grok_asg_anomaly iio_us-east-1_i-a2eb1cd9_NetworkIn rds_cpu_utilization_cc0c53 "
            "rds_cpu_utilization_e47b3b"
        ).split()
    ),
    *(
        f"realKnownCause/{n}.csv"
        for n in (
            "ambient_temperature_system_failure cpu_utilization_asg_misconfiguration "
            "ec2_request_latency_system_failure machine_temperature_system_failure nyc_taxi "
            "rogue_agent_key_hold rogue_agent_key_updown"
        ).split()
    ),
]
SMD_MACHINES = [f"machine-1-{i}" for i in range(1, 9)] + [f"machine-2-{i}" for i in range(1, 10)]
SMD_MACHINES += [f"machine-3-{i}" for i in range(1, 12)]
ASD_SERVERS = [f"omi-{i}" for i in range(1, 13)]


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    license: str
    files: Callable[[], Iterable[tuple[str, str, Callable[[bytes], bytes]]]]  # (url, relative dest, convert)


def _same(data: bytes) -> bytes:
    return data


def _nab_files() -> Iterable[tuple[str, str, Callable[[bytes], bytes]]]:
    for name in NAB_FILES:
        yield f"{NAB_BASE}/data/{name}", f"data/{name}", _same
    for name in ("combined_windows.json", "combined_labels.json"):
        yield f"{NAB_BASE}/labels/{name}", f"labels/{name}", _same
    yield f"{NAB_BASE}/LICENSE.txt", "LICENSE.txt", _same


def _smd_files() -> Iterable[tuple[str, str, Callable[[bytes], bytes]]]:
    for m in SMD_MACHINES:
        yield f"{SMD_LFS}/train/{m}.txt", f"train/{m}.txt", _not_lfs_pointer
        yield f"{SMD_LFS}/test/{m}.txt", f"test/{m}.txt", _not_lfs_pointer
        yield f"{SMD_RAW}/test_label/{m}.txt", f"test_label/{m}.txt", _same
        yield f"{SMD_RAW}/interpretation_label/{m}.txt", f"interpretation_label/{m}.txt", _same
    yield f"{SMD_RAW}/LICENSE", "LICENSE", _same


def _asd_files() -> Iterable[tuple[str, str, Callable[[bytes], bytes]]]:
    for s in ASD_SERVERS:
        yield f"{ASD_BASE}/processed/{s}_train.pkl", f"train/{s}.txt", _pickle_to_csv
        yield f"{ASD_BASE}/processed/{s}_test.pkl", f"test/{s}.txt", _pickle_to_csv
        yield f"{ASD_BASE}/processed/{s}_test_label.pkl", f"test_label/{s}.txt", _pickle_to_csv
        yield f"{ASD_BASE}/interpretation_label/{s}.txt", f"interpretation_label/{s}.txt", _same
    yield f"{ASD_BASE}/interpretation_label/anomaly_type.txt", "anomaly_type.csv", _same


SOURCES: dict[str, Source] = {
    "nab": Source("nab", "NAB v1.1 realAWSCloudwatch + realKnownCause (numenta/NAB)", "MIT", _nab_files),
    "smd": Source("smd", "Server Machine Dataset, 28 machines (NetManAIOps/OmniAnomaly)", "MIT", _smd_files),
    "asd": Source("asd", "Application Server Dataset omi-1..12 (zhhlee/InterFusion)", "MIT", _asd_files),
}


def fetch_dataset(
    name: str,
    dest_root: Path,
    *,
    session: requests.Session | None = None,
    timeout_s: float = 30.0,
    url_rewrite: Callable[[str], str] | None = None,
) -> Path:
    """Download dataset ``name`` into ``dest_root/name`` and return that folder.

    Each file is written to a temporary name and renamed into place, so an interrupted fetch
    leaves whole files only; files already present are kept, so a rerun resumes.
    ``url_rewrite`` maps each upstream URL, for a mirror.
    """
    source = SOURCES.get(name.lower())
    if source is None:
        raise NotFound(f"unknown dataset {name!r}", hint=f"known: {', '.join(sorted(SOURCES))}")
    dest = Path(dest_root) / source.name
    http = session or requests.Session()
    for url, rel, convert in source.files():
        target = dest / rel
        if target.exists():
            continue
        url = url_rewrite(url) if url_rewrite else url
        try:
            resp = http.get(url, timeout=timeout_s)
        except requests.RequestException as exc:
            raise UpstreamUnavailable(
                f"cannot download {source.name} from {url}: {type(exc).__name__}",
                hint="check internet access, or copy the dataset into VIGIL_DATA_DIR",
            ) from None
        if resp.status_code != 200:
            raise UpstreamUnavailable(f"cannot download {source.name}: {url} answered HTTP {resp.status_code}")
        _atomic_write(target, convert(resp.content))
    return dest


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _not_lfs_pointer(data: bytes) -> bytes:
    if data.startswith(b"version https://git-lfs"):
        raise UpstreamUnavailable("upstream served a git-LFS pointer instead of the data (LFS quota exhausted?)")
    return data


class _NumpyOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name}: only numpy arrays are expected")
        return super().find_class(module, name)


def _pickle_to_csv(data: bytes) -> bytes:
    array = np.asarray(_NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load())
    out = io.StringIO()
    if array.ndim == 1:
        np.savetxt(out, array.astype(np.int64), fmt="%d")
    else:
        # float32's shortest round-trip repr keeps the conversion lossless, as in ../shared/data/asd.
        for row in array.astype(np.float32):
            out.write(",".join(str(v) for v in row) + "\n")
    return out.getvalue().encode()
