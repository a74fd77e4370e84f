"""Plain data -> what strict JSON can carry (base layer: imports nothing from vigil)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def json_safe(obj: Any, digits: int | None = None) -> Any:
    """NaN and infinities become null ("not measured"); keys become strings; tuples become lists;
    numpy scalars become Python numbers; with ``digits``, floats are rounded (prompts stay short)."""
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            return None
        return obj if digits is None else round(obj, digits)
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v, digits) for v in obj]
    return obj
