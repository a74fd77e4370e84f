"""Real recorded series (NAB, AWS CloudWatch) wrapped as Prometheus range-query results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vigil.datasets import load_nab
from vigil.prometheus import RangeSeries

NAB_FILES = {
    "cpu": "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv",
    "disk": "realAWSCloudwatch/ec2_disk_write_bytes_1ef3de.csv",
    "requests": "realAWSCloudwatch/elb_request_count_8c0756.csv",
}


@pytest.fixture(scope="session")
def nab_series(data_dir: Path) -> dict[str, RangeSeries]:
    """Three CloudWatch series (5-minute steps) as RangeSeries with Prometheus-style labels.

    The recordings come from different weeks; each keeps its own spacing but is re-anchored to
    start at the first one's start, so they overlap the way series of one Prometheus do.
    """
    out = {}
    anchor = None
    for key, name in NAB_FILES.items():
        [s] = load_nab(data_dir / "nab", names=[name])
        seconds = s.frame.index.as_unit("ns").asi8 / 1e9
        anchor = seconds[0] if anchor is None else anchor
        ts = seconds - seconds[0] + anchor
        labels = {"__name__": f"aws_{key}", "instance": name.split("/")[1].removesuffix(".csv"), "job": "cloudwatch"}
        out[key] = RangeSeries(labels, ts.astype(np.float64), s.frame["value"].to_numpy(dtype=np.float64))
    return out
