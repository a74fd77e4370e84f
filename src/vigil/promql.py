"""PromQL built from untrusted text: string literals, selectors, name checks, the one module every
part of Vigil builds queries with.

Label values come from scrape targets, so whoever controls a target controls that text; pasted raw,
``"} or vector(1) #`` would turn a selector into a different query. Quoted with
:func:`string_literal` (as :func:`selector` and :func:`matchers` do), it is only ever a string;
names (metric, label) are validated against Prometheus' own grammar instead of escaped.

>>> string_literal('"} or vector(1) #')
'"\\\\"} or vector(1) #"'
>>> selector("up", instance='"} or vector(1) #')
'up{instance="\\\\"} or vector(1) #"}'
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence

from vigil.errors import BadRequest

# Prometheus' own grammar: names are validated against it, never escaped.
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def promql_escape(value: str) -> str:
    """Escape ``value`` for use inside a double-quoted PromQL string literal (quotes not included);
    other control characters as ``\\xNN``, which PromQL reads back as the same character."""
    out = []
    for ch in str(value):
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def string_literal(value: str) -> str:
    """A PromQL double-quoted string whose content is exactly ``value``."""
    return '"' + promql_escape(value) + '"'


def check_label_name(name: str) -> str:
    if not LABEL_NAME.match(name):
        raise BadRequest(f"invalid label name {name[:60]!r}")
    return name


def check_metric_name(name: str) -> str:
    if not METRIC_NAME.match(name):
        raise BadRequest(f"invalid metric name {name[:60]!r}")
    return name


Matcher = tuple[str, str, str]  # (label, op, value)
_MATCH_OPS = ("=", "!=", "=~", "!~")


def selector(metric: str | None = None, matchers: Sequence[Matcher] = (), /, **equals: str) -> str:
    """Build a vector selector; every label value is escaped, every name validated.

    ``matchers`` are ``(label, op, value)`` with op one of ``= != =~ !~``; keyword arguments add
    equality matchers.
    """
    parts = []
    for label, op, value in [*matchers, *((k, "=", v) for k, v in equals.items())]:
        if op not in _MATCH_OPS:
            raise BadRequest(f"invalid matcher operator {op!r}; use one of {', '.join(_MATCH_OPS)}")
        parts.append(f"{check_label_name(label)}{op}{string_literal(value)}")
    name = check_metric_name(metric) if metric else ""
    if not parts:
        if not name:
            raise BadRequest("a selector needs a metric name or at least one matcher")
        return name
    return f"{name}{{{','.join(parts)}}}"


def matchers(labels: Mapping[str, str]) -> str:
    """``a="x",b="y"`` (no braces), values escaped, names validated: equality matchers to splice
    into a selector that has others."""
    return ",".join(f"{check_label_name(k)}={string_literal(v)}" for k, v in labels.items())


def regex_literal(value: str) -> str:
    """A regular expression (RE2) matching exactly ``value``, for ``=~`` alternations of literals."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", value)


def signal_query(metric: str, entity_matchers: str) -> str | None:
    """PromQL for a plain Prometheus metric on one entity (rated when it is a counter), or ``None``
    when the name is not a metric name.

    Feature names derived from a metric (``node_load1__zscore_60``) map to the metric itself. The
    catalogue's signals (``cpu_busy``, ...) are expressions, not metric names: their PromQL comes from
    the catalogue (``vigil.wiring.catalog_queries``).
    """
    base = metric.split("__", 1)[0] if "__" in metric[1:] else metric
    if not METRIC_NAME.match(base):
        return None
    if base.endswith(("_total", "_count", "_sum", "_bucket")):
        return f"rate({base}{{{entity_matchers}}}[1m])"
    return f"{base}{{{entity_matchers}}}"


def graph_url(prometheus_url: str, expr: str, range_input: str = "1h") -> str:
    """A link that opens ``expr`` in Prometheus' graph page."""
    query = urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": range_input})
    return f"{prometheus_url.rstrip('/')}/graph?{query}"
