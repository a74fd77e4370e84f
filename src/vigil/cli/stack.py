"""CLI commands: up, down, status (the local stack on loopback)."""

from __future__ import annotations

import json
import time
from typing import Any

import typer


def _table(report: dict[str, Any], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in ("component", "state", "pid", "healthy", "restarts", "url"):
        table.add_column(col, no_wrap=col != "url", overflow="fold" if col == "url" else "ellipsis")
    for c in report["components"]:
        healthy = "[green]yes[/green]" if c["healthy"] else "[red]no[/red]"
        table.add_row(c["name"], c["state"], str(c["pid"] or "-"), healthy, str(c["restarts"]), c["url"])
    return table


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""

    @app.command()
    def up(
        only: list[str] = typer.Argument(None, metavar="COMPONENT", help="Start only these (default: all)."),
        foreground: bool = typer.Option(
            False, "--foreground", "-f", help="Stay attached, show live status, stop everything on Ctrl-C."
        ),
        timeout: float = typer.Option(90.0, help="Seconds to wait for every component to become healthy."),
    ) -> None:
        """Start the local stack (Prometheus, node_exporter, Alertmanager, mtail, demo app, Vigil) on loopback."""
        from rich.console import Console

        from vigil.config import load_settings
        from vigil.stack import control

        settings = load_settings()
        console = Console()
        if not foreground:
            already, report = control.up(settings, timeout_s=timeout, only=only or None)
            console.print(_table(report, "Vigil stack " + ("already running" if already else "is up")))
            console.print(f"logs: {settings.logs_dir}/<component>.log   stop: vigil down")
            return

        from contextlib import nullcontext

        from rich.live import Live

        title = f"Vigil stack - logs in {settings.logs_dir} - Ctrl-C stops it"
        # On a terminal the table redraws in place; into a pipe or CI log it is printed only on change.
        live = Live(console=console, refresh_per_second=2, transient=False) if console.is_terminal else None
        last = {"at": 0.0, "seen": None}

        def on_tick(_sup: object) -> None:
            if time.monotonic() - last["at"] < 1.0:
                return
            last["at"] = time.monotonic()
            report = control.status(settings)
            if live is not None:
                live.update(_table(report, title))
                return
            seen = [(c["name"], c["state"], c["pid"], c["healthy"]) for c in report["components"]]
            if seen != last["seen"]:
                last["seen"] = seen
                console.print(_table(report, title))

        with live if live is not None else nullcontext():
            control.run_foreground(settings, on_tick, only=only or None)
        console.print("stack stopped")

    @app.command()
    def down(timeout: float = typer.Option(30.0, help="Seconds to wait for the supervisor to stop.")) -> None:
        """Stop exactly the processes `vigil up` started (also after a supervisor crash)."""
        from vigil.config import load_settings
        from vigil.stack import control

        stopped = control.down(load_settings(), timeout_s=timeout)
        typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")

    @app.command()
    def status(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
        """Show each component, its PID, URL and whether it answers; exit 1 unless all are healthy."""
        from vigil.config import load_settings
        from vigil.stack import control

        report = control.status(load_settings())
        if json_out:
            typer.echo(json.dumps(report, indent=2))
        else:
            from rich.console import Console

            Console().print(_table(report, f"Vigil stack - logs in {load_settings().logs_dir}"))
        healthy = bool(report["components"]) and all(c["healthy"] for c in report["components"])
        raise typer.Exit(0 if healthy else 1)
