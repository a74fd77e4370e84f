"""gunicorn settings for ``vigil serve``.

One worker process with threads, never more workers: the streaming state (one scorer and ring
buffer per entity, the alarm state, the alert queue) lives in the process that received the
samples. Several workers would each see a random share of every entity's samples, so no worker
would ever hold a complete step. Threads are enough because the scoring itself is short, numpy-
bound work and the remaining time is I/O.
"""

from __future__ import annotations

import os

from vigil.config import load_settings

_settings = load_settings()

bind = os.environ.get("VIGIL_SERVE_BIND", f"{_settings.bind_host}:{_settings.ports.vigil}")
workers = int(os.environ.get("VIGIL_SERVE_WORKERS", "1"))
worker_class = "gthread"
threads = int(os.environ.get("VIGIL_SERVE_THREADS", str(_settings.serving.threads)))
# Prometheus keeps remote_write connections open; keep-alive avoids a handshake per request.
keepalive = 30
timeout = 60
graceful_timeout = 10
# The app starts background threads (reloader, snapshotter); they must start in the worker, not the master.
preload_app = False
accesslog = None
errorlog = "-"
loglevel = os.environ.get("VIGIL_LOG_LEVEL", "info")


def worker_exit(server: object, worker: object) -> None:
    # Write the streaming snapshot on shutdown so the next start needs no warm-up.
    app = getattr(worker, "wsgi", None)
    ctx = getattr(app, "extensions", {}).get("vigil") if app is not None else None
    if ctx is not None:
        ctx.service.close()
