"""Build PromQL from untrusted label values without letting them change the query.

Label values come from scrape targets (anyone who controls a target controls its ``instance`` or
``job`` text), so they only ever enter a query as a quoted, escaped string literal, and names
(metric, label) are validated against Prometheus' own grammar instead of escaped.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from string import Template

from vigil.promql import METRIC_NAME, check_label_name, check_metric_name, string_literal


def matchers(labels: Mapping[str, str]) -> str:
    """``a="x",b="y"`` (no braces), values escaped, names validated."""
    return ",".join(f"{check_label_name(k)}={string_literal(v)}" for k, v in labels.items())


def selector(metric: str, labels: Mapping[str, str]) -> str:
    return f"{check_metric_name(metric)}{{{matchers(labels)}}}"


# Signals Vigil knows by name (node_exporter), as templates over ``$sel`` (the entity's matchers).
# ``$`` never occurs in PromQL, and the substituted text is not parsed again, so it cannot smuggle a
# second template variable.
SIGNALS: dict[str, str] = {
    "cpu_busy": '1 - avg(rate(node_cpu_seconds_total{$sel,mode="idle"}[1m]))',
    "cpu_iowait": 'avg(rate(node_cpu_seconds_total{$sel,mode="iowait"}[1m]))',
    "load1": "node_load1{$sel}",
    "mem_used_ratio": "1 - node_memory_MemAvailable_bytes{$sel} / node_memory_MemTotal_bytes{$sel}",
    "swap_used_ratio": "1 - node_memory_SwapFree_bytes{$sel} / clamp_min(node_memory_SwapTotal_bytes{$sel}, 1)",
    "major_page_faults": "rate(node_vmstat_pgmajfault{$sel}[1m])",
    "disk_used_ratio": 'max(1 - node_filesystem_avail_bytes{$sel,fstype!~"proc|sysfs|nsfs"}'
    ' / node_filesystem_size_bytes{$sel,fstype!~"proc|sysfs|nsfs"})',
    "disk_io_util": "max(rate(node_disk_io_time_seconds_total{$sel}[1m]))",
    "disk_read_bytes": "sum(rate(node_disk_read_bytes_total{$sel}[1m]))",
    "disk_write_bytes": "sum(rate(node_disk_written_bytes_total{$sel}[1m]))",
    "net_rx_bytes": 'sum(rate(node_network_receive_bytes_total{$sel,device!="lo"}[1m]))',
    "net_tx_bytes": 'sum(rate(node_network_transmit_bytes_total{$sel,device!="lo"}[1m]))',
    "net_errors": "sum(rate(node_network_receive_errs_total{$sel}[1m])"
    " + rate(node_network_transmit_errs_total{$sel}[1m]))",
    "net_drops": "sum(rate(node_network_receive_drop_total{$sel}[1m])"
    " + rate(node_network_transmit_drop_total{$sel}[1m]))",
    "tcp_retrans": "rate(node_netstat_Tcp_RetransSegs{$sel}[1m])",
    "up": "up{$sel}",
}


def signal_query(metric: str, entity_matchers: str) -> str | None:
    """PromQL for one signal on one entity, or ``None`` when the name says nothing Prometheus knows.

    Feature names derived from a signal (``cpu_busy__zscore_60``) map to the signal itself; a plain
    Prometheus metric name is selected directly, rated when it is a counter.
    """
    base = metric.split("__", 1)[0] if "__" in metric[1:] else metric
    if base in SIGNALS:
        return Template(SIGNALS[base]).substitute(sel=entity_matchers)
    if not METRIC_NAME.match(base):
        return None
    if base.endswith(("_total", "_count", "_sum", "_bucket")):
        return f"rate({base}{{{entity_matchers}}}[1m])"
    return f"{base}{{{entity_matchers}}}"


def graph_url(prometheus_url: str, expr: str, range_input: str = "1h") -> str:
    """A link that opens ``expr`` in Prometheus' graph page."""
    query = urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": range_input})
    return f"{prometheus_url.rstrip('/')}/graph?{query}"
