"""PromQL string literals from untrusted text and name checks: the ones every part of Vigil uses.

Label values come from scrape targets, so whoever controls a target controls that text; pasted raw,
``"} or vector(1) #`` would turn a selector into a different query. Quoted with
:func:`string_literal`, it is only ever a string.

>>> string_literal('"} or vector(1) #')
'"\\\\"} or vector(1) #"'
"""

from __future__ import annotations

import re

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
