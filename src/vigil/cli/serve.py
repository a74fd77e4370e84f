"""CLI command: ``vigil serve`` (the detection service under gunicorn)."""

from __future__ import annotations

from typing import Any

import typer

from vigil.errors import ConfigError


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
