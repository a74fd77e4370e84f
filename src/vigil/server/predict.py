"""``POST /v1/predict``: score precomputed feature rows with the served model.

Three JSON request forms, all validated against the model's feature list:

* rows: ``{"instances": [[f1, f2, ...], ...]}`` (values in ``feature_names_`` order) or
  ``{"instances": [{"f1": v, ...}, ...]}``;
* columnar: ``{"columns": {"f1": [...], "f2": [...], ...}}``;
* compact columnar, for large batches: ``{"names": [...], "rows": n, "dtype": "float32"|"float64",
  "data": "<base64 of the column-major little-endian array>"}``.

With ``api_read_token`` set it needs that token or the admin token (it reveals what the model
scores). Every value must be finite; the answer is ``{"scores": [...], "above_threshold": [...], ...}``.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flask import Blueprint, Response, current_app, jsonify, request

from vigil.detection.service import DetectionService
from vigil.errors import BadRequest, ModelError, NotFound, PayloadTooLarge, UnsupportedMediaType
from vigil.server.auth import require_read_token

bp = Blueprint("predict", __name__)


def _from_rows(rows: Any, names: list[str]) -> np.ndarray:
    if not isinstance(rows, list) or not rows:
        raise BadRequest('"instances" must be a non-empty list of rows')
    if isinstance(rows[0], Mapping):
        out = np.empty((len(rows), len(names)))
        known = set(names)
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise BadRequest(f"row {i} is not an object like row 0")
            missing = [n for n in names if n not in row]
            extra = [k for k in row if k not in known]
            if missing or extra:
                raise BadRequest(f"row {i}: missing features {missing[:5]}, unknown features {extra[:5]}")
            for j, name in enumerate(names):
                value = row[name]
                # JSON numbers only: numpy would also take "1.5" or true, and fail on "abc" with a 500.
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise BadRequest(f"row {i}, feature {name!r}: expected a number, got {type(value).__name__}")
                try:
                    out[i, j] = value
                except OverflowError:
                    raise BadRequest(f"row {i}, feature {name!r}: {str(value)[:20]}... does not fit a double") from None
        return out
    try:
        array = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadRequest("rows must hold numbers only, all of the same length") from None
    if array.ndim != 2 or array.shape[1] != len(names):
        raise BadRequest(f"each row must hold {len(names)} numbers (the model's features), got shape {array.shape}")
    return array


def _from_columns(columns: Any, names: list[str]) -> np.ndarray:
    if not isinstance(columns, Mapping):
        raise BadRequest('"columns" must map feature name -> list of values')
    missing = [n for n in names if n not in columns]
    extra = [k for k in columns if k not in names]
    if missing or extra:
        raise BadRequest(f"missing features {missing[:5]}, unknown features {extra[:5]}")
    try:
        cols = [np.asarray(columns[n], dtype=np.float64) for n in names]
    except (TypeError, ValueError):
        raise BadRequest("columns must hold numbers only") from None
    lengths = {c.shape for c in cols}
    if len(lengths) != 1 or cols[0].ndim != 1:
        raise BadRequest("every column must be a flat list of the same length")
    return np.column_stack(cols)


def _from_compact(body: Mapping[str, Any], names: list[str], max_rows: int) -> np.ndarray:
    given = body.get("names")
    if not isinstance(given, Sequence) or list(given) != names:
        raise BadRequest('"names" must equal the model\'s feature list in order (see GET /v1/models)')
    rows = body.get("rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows <= 0:
        raise BadRequest('"rows" must be a positive integer')
    if rows > max_rows:
        raise PayloadTooLarge(f"{rows} rows, the limit is {max_rows}")
    dtype = {"float64": "<f8", "float32": "<f4"}.get(str(body.get("dtype", "float64")))
    if dtype is None:
        raise BadRequest('"dtype" must be float64 or float32')
    try:
        raw = base64.b64decode(str(body.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest('"data" is not valid base64') from None
    expected = rows * len(names) * np.dtype(dtype).itemsize
    if len(raw) != expected:
        raise BadRequest(f'"data" holds {len(raw)} bytes, expected {expected} ({rows} rows x {len(names)} {dtype})')
    return np.frombuffer(raw, dtype=dtype).reshape(len(names), rows).T.astype(np.float64)


def parse_features(body: Any, names: list[str], max_rows: int) -> np.ndarray:
    if not isinstance(body, Mapping):
        raise BadRequest("send a JSON object with instances, columns, or the compact columnar form")
    if "instances" in body:
        x = _from_rows(body["instances"], names)
    elif "data" in body:
        x = _from_compact(body, names, max_rows)
    elif "columns" in body:
        x = _from_columns(body["columns"], names)
    else:
        raise BadRequest('expected one of "instances", "columns" or "data" (compact columnar)')
    if x.shape[0] > max_rows:
        raise PayloadTooLarge(f"{x.shape[0]} rows, the limit is {max_rows}")
    if x.shape[0] == 0:
        raise BadRequest("no rows to score")
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise BadRequest(f"row {row}, feature {names[col]!r} is not a finite number ({int(bad.sum())} such values)")
    return x


@bp.post("/v1/predict")
@require_read_token
def predict() -> Response:
    service: DetectionService = current_app.extensions["vigil"].service
    if not request.is_json:
        raise UnsupportedMediaType("Content-Type must be application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequest("body is not valid JSON")
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object with instances, columns, or the compact columnar form")
    model = body.get("model", "")
    if not isinstance(model, str):
        raise BadRequest('"model" must be a served model name (a string)')
    loaded = service.engines.model(model) if model else service.engines.loaded
    if loaded is None:
        if model:
            raise NotFound(f"no model {model!r} is loaded", hint="GET /v1/models lists the served models")
        raise ModelError("no model loaded yet", hint="train one with `vigil train`")
    names = list(loaded.model.feature_names_)
    x = parse_features(body, names, service.settings.serving.max_predict_rows)
    start = time.perf_counter()
    scores = np.asarray(loaded.scorer.score_features(x), dtype=np.float64)
    elapsed = time.perf_counter() - start
    service.stats.counters.inc("predictions", "rows", len(scores))
    threshold = float(loaded.model.threshold_)
    return jsonify(
        scores=scores.tolist(),
        above_threshold=(scores > threshold).tolist(),
        threshold=threshold,
        model_version=loaded.version,
        scoring_ms=round(elapsed * 1000, 4),
    )
