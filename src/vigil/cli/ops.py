"""CLI commands: ``backup``, ``restore``, ``upgrade-check`` (docs/operations.md), ``slo`` (docs/slo.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def backup(
        to: Path = typer.Option(..., "--to", help="Folder the backup is written under (created if missing)."),
        keep: int = typer.Option(0, "--keep", help="Then remove all but the newest N backups there (0: keep all)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Snapshot VIGIL_HOME (archive, registry, models, serving state, settings) while the stack runs."""
        from vigil.backup import backup as run_backup
        from vigil.config import load_settings

        result = run_backup(load_settings(), to, keep=keep, progress=lambda m: typer.echo(f"backup: {m}", err=True))
        if as_json:
            typer.echo(json.dumps(result.to_dict(), indent=2))
            return
        typer.echo(f"{result.path}: {result.files} files, {result.bytes / 1e6:.1f} MB in {result.seconds:.1f} s")
        for note in result.notes:
            typer.echo(f"note: {note}")
        for old in result.removed:
            typer.echo(f"removed {old}")

    @app.command()
    def restore(
        source: Path = typer.Option(..., "--from", help="A backup folder (vigil-backup-...)."),
        home: Path | None = typer.Option(None, "--home", help="Restore here (default: VIGIL_HOME)."),
        force: bool = typer.Option(False, "--force", help="Overwrite a home that is not empty."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Verify a backup and restore it onto an empty home (stop the stack that uses it first)."""
        from vigil.backup import restore as run_restore
        from vigil.config import load_settings

        done = run_restore(source, home or load_settings().home, force=force)
        if as_json:
            typer.echo(json.dumps(done, indent=2))
            return
        typer.echo(f"restored {done['files']} files from {done['from']} into {done['home']}")

    @app.command("upgrade-check")
    def upgrade_check(
        home: Path | None = typer.Option(None, "--home", help="The home to check (default: VIGIL_HOME)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """What this version will do with each file of an existing home: read, migrate, start afresh or
        refuse. Changes nothing; exit 1 when anything would be refused."""
        from rich.console import Console
        from rich.table import Table

        from vigil.config import load_settings
        from vigil.upgrade import check_home, refused

        settings = load_settings() if home is None else load_settings(home=home.expanduser())
        checks = check_home(settings)
        if as_json:
            typer.echo(json.dumps([c.to_dict() for c in checks], indent=2))
        else:
            table = Table("what", "path", "format", "this version will", "detail", title=f"{settings.home}")
            for c in checks:
                table.add_row(c.kind, str(c.path), c.found, c.action, c.detail)
            Console().print(table)
            if not checks:
                typer.echo(f"nothing persisted under {settings.home}")
        if refused(checks):
            raise typer.Exit(1)

    @app.command()
    def slo(
        window: str = typer.Option("1h", "--window", help="How far back from --at, e.g. 30m, 2h, 7d."),
        at: float = typer.Option(0.0, "--at", help="End of the window, unix seconds (default: now)."),
        prometheus_url: str = typer.Option("", "--prometheus-url", help="Prometheus-compatible API (prometheus_url)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Vigil's own SLOs over a window, measured from Prometheus (docs/slo.md)."""
        import time

        from vigil.config import load_settings
        from vigil.detection.slo import measure
        from vigil.durations import parse_duration
        from vigil.prometheus import PromClient

        settings = load_settings()
        prom = PromClient(prometheus_url or settings.effective_prometheus_url)
        rows = measure(prom, parse_duration(window), at or time.time(), step_s=max(settings.scrape_interval_s, 1.0))
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        for r in rows:
            share = "no events" if r["good_share"] is None else f"{r['good_share'] * 100:.3f} %"
            verdict = "" if r["met"] is None else ("  met" if r["met"] else "  MISSED")
            events = f"{r['events'] or 0:.0f} events"
            target = f"objective {r['target'] * 100:g} %"
            typer.echo(f"{r['objective']:24s} {share:>11s} of {events:>14s} ({target}){verdict}")
