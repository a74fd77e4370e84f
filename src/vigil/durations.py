"""Durations as people type them (``90s``, ``15m``, ``1h30m``, ``1.5h``, ``7d``, ``2w``), in seconds.

One grammar for the CLI, the console and chat, so ``--since 1h30m`` and ``silence db 1h30m`` read alike.
"""

from __future__ import annotations

import math
import re

from vigil.errors import BadRequest

__all__ = ["parse_duration"]

_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile("".join(f"(?:{_NUMBER}{unit})?" for unit in "wdhms"))
_UNIT_S = (604800.0, 86400.0, 3600.0, 60.0, 1.0)


def parse_duration(text: str, *, maximum_s: float | None = None) -> float:
    """Seconds in ``text``: one or more ``<number><unit>`` parts, units ``w d h m s`` in that order.

    >>> parse_duration("1h30m"), parse_duration("1.5h"), parse_duration("2w") / 86400
    (5400.0, 5400.0, 14.0)
    """
    cleaned = re.sub(r"\s+", "", text.lower())
    match = _DURATION.fullmatch(cleaned)
    if not cleaned or match is None:
        raise BadRequest(f"cannot read duration {text[:40]!r}", hint="use e.g. 90s, 30m, 1h30m, 6h or 7d")
    total = sum(float(g) * unit for g, unit in zip(match.groups(), _UNIT_S, strict=True) if g)
    if not 0 < total < math.inf:
        raise BadRequest(f"duration {cleaned[:40]!r} must be positive and finite")
    if maximum_s is not None and total > maximum_s:
        raise BadRequest(f"duration {cleaned} is longer than the limit of {maximum_s / 86400:g} days")
    return total
