"""CLI commands: ``vigil serve`` (the detection service under gunicorn), and what it groups:
``vigil incidents`` (from the running service) and ``vigil topology`` (from the settings)."""

from __future__ import annotations

import json
import time
from typing import Any

import typer

from vigil.errors import ConfigError, UpstreamUnavailable


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""

    @app.command()
    def serve(
        host: str = typer.Option(None, help="Bind address (default: settings bind_host, 127.0.0.1)."),
        port: int = typer.Option(None, help="Port (default: settings ports.vigil)."),
        workers: int = typer.Option(1, help="gunicorn workers; keep 1: streaming state is per process."),
        threads: int = typer.Option(None, help="Threads in the worker (default: settings serving.threads)."),
    ) -> None:
        """Serve remote_write ingest, /v1/predict, /metrics and health with gunicorn."""
        from gunicorn.app.base import BaseApplication

        from vigil.config import load_settings
        from vigil.server.gunicorn_conf import options

        settings = load_settings()
        if workers < 1:
            raise ConfigError("--workers must be at least 1")
        if workers > 1:
            typer.echo(
                "vigil: warning: each worker keeps its own streaming state; entities will be split "
                "between workers and /metrics will differ per scrape (see docs/serving.md)",
                err=True,
            )
        opts = options(settings, host=host, port=port, workers=workers, threads=threads)

        class _Server(BaseApplication):  # type: ignore[misc]
            def load_config(self) -> None:
                for key, value in opts.items():
                    self.cfg.set(key, value)

            def load(self) -> Any:
                from vigil.server import create_app

                return create_app(load_settings())

        scheme = "https" if opts.get("certfile") else "http"
        typer.echo(f"vigil: serving on {scheme}://{opts['bind']} ({workers} worker x {opts['threads']} threads)")
        _Server().run()

    @app.command()
    def incidents(
        as_json: bool = typer.Option(False, "--json", help="Print the service's JSON as it is."),
        url: str = typer.Option("", help="The Vigil service (default: the local stack's)."),
    ) -> None:
        """Open incidents, then the recently resolved ones: related entities' alarms grouped."""
        import requests

        from vigil.config import load_settings
        from vigil.tokens import read_headers

        settings = load_settings()
        base = (url or settings.url("vigil")).rstrip("/")
        try:
            resp = requests.get(f"{base}/v1/incidents", headers=read_headers(settings), timeout=10)
            resp.raise_for_status()
        except requests.RequestException as exc:
            raise UpstreamUnavailable(
                f"the Vigil service at {base} did not answer: {exc}", hint="is it running? (vigil up, vigil serve)"
            ) from None
        found = resp.json()["incidents"]
        if as_json:
            typer.echo(json.dumps(found, indent=1))
            return
        if not found:
            typer.echo("no incidents")
        for incident in found:
            when = time.strftime("%H:%M:%S", time.localtime(incident["started"]))
            names = ", ".join(e["entity"] + ("*" if e["alarm"] else "") for e in incident["entities"])
            typer.echo(f"{incident['id']}  {incident['status']:8}  since {when}  {names}")

    @app.command()
    def topology(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Which service runs on which host and what it depends on (``entities:`` in vigil.yml)."""
        from vigil.config import load_settings
        from vigil.detection.incidents import Topology

        services = Topology.from_settings(load_settings()).to_dict()
        if as_json:
            typer.echo(json.dumps({"services": services}, indent=1))
            return
        for name, svc in services.items():
            typer.echo(f"{name}: on {svc['host'] or '?'}, depends on {', '.join(svc['depends_on']) or 'nothing'}")
