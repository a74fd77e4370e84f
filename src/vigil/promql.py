"""PromQL string literals from untrusted text: the one escaping every part of Vigil uses.

Label values come from scrape targets, so whoever controls a target controls that text; pasted raw,
``"} or vector(1) #`` would turn a selector into a different query. Quoted with
:func:`string_literal`, it is only ever a string.

>>> string_literal('"} or vector(1) #')
'"\\\\"} or vector(1) #"'
"""

from __future__ import annotations

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
