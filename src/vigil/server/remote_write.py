"""``POST /api/v1/write``: the Prometheus remote_write 1.0 receiver.

Status codes follow the spec: 204 when the samples were taken; 4xx (never retried by the sender)
for data that will never become valid, with the reason as JSON; 503 with ``Retry-After`` only
while no model is loaded, because a retry then can succeed. Out-of-order samples are dropped and
answered with 400 (as Prometheus itself does) while the request's in-order samples are kept.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app, request

from vigil.detection.service import DetectionService
from vigil.errors import BadRequest, PayloadTooLarge, VigilError
from vigil.ingest.remote_write import DEFAULT_MAX_LABEL_VALUE_LENGTH, check_headers, decode_write_request

bp = Blueprint("remote_write", __name__)
log = logging.getLogger(__name__)


@bp.post("/api/v1/write")
def write() -> Response:
    received_at = time.time()
    start = time.perf_counter()
    ctx = current_app.extensions["vigil"]
    service: DetectionService = ctx.service
    serving = service.settings.serving
    status = 500
    try:
        check_headers(
            request.headers.get("Content-Type"),
            request.headers.get("Content-Encoding"),
            request.headers.get("X-Prometheus-Remote-Write-Version"),
        )
        length = request.content_length
        if length is not None and length > serving.max_body_bytes:
            raise PayloadTooLarge(f"body is {length} bytes, the limit is {serving.max_body_bytes}")
        batch = decode_write_request(
            request.get_data(cache=False),
            max_compressed_bytes=serving.max_body_bytes,
            max_decompressed_bytes=serving.max_decompressed_bytes,
        )
        if batch.n_label_too_long:
            service.stats.counters.inc("samples", "label_too_long", batch.n_label_too_long)
        try:
            counts = service.engine.ingest(batch.series, received_at=received_at)
        except VigilError:
            raise
        except Exception as exc:
            # A 5xx makes Prometheus retry the same batch forever, stalling its queue behind it; a
            # batch that trips a bug is dropped with a 400 instead (logged and counted).
            log.exception("ingest failed on a decoded batch")
            service.stats.counters.inc("scoring_errors", "ingest")
            raise BadRequest(f"the batch could not be ingested ({type(exc).__name__}); it was dropped") from None
        if not counts.accepted and (counts.too_old or counts.too_new or batch.n_label_too_long):
            raise BadRequest(
                f"no sample was usable: {counts.too_old} older than {serving.max_sample_age_s:g} s and "
                f"{counts.too_new} more than {serving.max_sample_ahead_s:g} s ahead of this receiver's clock, "
                f"{batch.n_label_too_long} in series with a label value over "
                f"{DEFAULT_MAX_LABEL_VALUE_LENGTH} characters; they were dropped"
            )
        if counts.out_of_order:
            raise BadRequest(
                f"{counts.out_of_order} samples are older than the last step already scored for their entity "
                f"and were dropped; {counts.accepted} samples were accepted"
            )
        status = 204
        return Response(status=204)
    except VigilError as exc:
        status = exc.http_status
        raise
    finally:
        service.stats.counters.inc("remote_write_requests", str(status))
        service.stats.request_seconds.observe(time.perf_counter() - start)
