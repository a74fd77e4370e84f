"""gunicorn settings for ``vigil serve``.

One worker process with threads, never more workers by default: the streaming state (one scorer
and ring buffer per entity, alarm state, the alert queue) lives in the process that received the
samples. With several workers each would see a random share of every entity's samples, none would
hold complete steps, and /metrics would answer from whichever worker the scrape hit. Threads are
enough: a scoring step is about a millisecond of numpy work with BLAS limited to one thread, and
the rest of a request is I/O.

Usable both ways: ``vigil serve`` calls :func:`options`; ``gunicorn -c python:vigil.server.gunicorn_conf
vigil.server.wsgi:app`` reads the module-level names. TLS (``certfile``, ``keyfile``, client
certificates) comes from ``serving.web_config_file``, see :mod:`vigil.server.webconfig`.
"""

from __future__ import annotations

import os
from typing import Any

from vigil.config import Settings, load_settings
from vigil.server.webconfig import load_web_config


def options(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int = 1,
    threads: int | None = None,
) -> dict[str, Any]:
    return {
        "bind": f"{host or settings.bind_host}:{port or settings.ports.vigil}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads or settings.serving.threads,
        # Prometheus keeps remote_write connections open; keep-alive saves a handshake per request.
        "keepalive": 30,
        "timeout": 60,
        "graceful_timeout": 10,
        # The app starts background threads (reloader, ticker, snapshotter): they must start in
        # the worker after the fork, never in the master.
        "preload_app": False,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": os.environ.get("VIGIL_LOG_LEVEL", "info"),
        "worker_exit": worker_exit,
        # gunicorn's default control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl): two
        # services on one host (Vigil and the watched demo, or two stacks) would fight over it.
        "control_socket_disable": True,
        **load_web_config(settings.serving.web_config_file).gunicorn_options(),
    }


def worker_exit(server: object, worker: object) -> None:
    # Write the streaming snapshot on shutdown so the next start needs no warm-up.
    app = getattr(worker, "wsgi", None)
    ctx = getattr(app, "extensions", {}).get("vigil") if app is not None else None
    if ctx is not None:
        ctx.service.close()


# Module-level names for `gunicorn -c python:vigil.server.gunicorn_conf`.
_opts = options(load_settings())
bind = _opts["bind"]
workers = _opts["workers"]
worker_class = _opts["worker_class"]
threads = _opts["threads"]
keepalive = _opts["keepalive"]
timeout = _opts["timeout"]
graceful_timeout = _opts["graceful_timeout"]
preload_app = _opts["preload_app"]
errorlog = _opts["errorlog"]
loglevel = _opts["loglevel"]
control_socket_disable = _opts["control_socket_disable"]
certfile = _opts["certfile"]
keyfile = _opts["keyfile"]
ca_certs = _opts["ca_certs"]
cert_reqs = _opts["cert_reqs"]
