"""CLI commands: validate (the fault-injection campaign against the live local stack)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""

    @app.command()
    def validate(
        profile: str = typer.Option("quick", help="quick (<= 15 min, every fault type once) or full."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the machine-readable results here."),
        report: Path | None = typer.Option(None, "--report", help="Directory for report.md, report.html, PNGs."),
        seed: int | None = typer.Option(None, help="Seed for the fault order (recorded; random if omitted)."),
        purpose: str = typer.Option(
            "test",
            help="test: a reported result, never used for tuning; validation: labelled windows for model selection.",
        ),
        record: Path | None = typer.Option(
            None, "--record", help="Save what the models saw (inputs, labels, models) here, to replay."
        ),
        cleanup: bool = typer.Option(
            False, "--cleanup", help="Only remove what an interrupted run left behind, then exit."
        ),
    ) -> None:
        """Inject real faults into the running stack and score detection: precision, recall, F1, latency."""
        from vigil.config import load_settings
        from vigil.validation.journal import CleanupJournal

        settings = load_settings()
        journal = CleanupJournal.for_home(settings.home)
        if cleanup:
            results = journal.recover()
            for res in results:
                what = res.action.get("argv") or res.action.get("path") or res.action.get("token") or ""
                typer.echo(f"{'undone' if res.ok else 'gone  '} {res.action.get('kind')}: {what} {res.detail}")
            typer.echo(f"cleanup: {len(results)} leftover(s) from interrupted runs handled")
            live = {e.owner_pid for e in journal.open_entries(include_live=True)}
            if live:
                # Never undo a running campaign's faults; it removes them itself when it ends.
                typer.echo(f"cleanup: left alone the faults of running injector(s): pid {', '.join(map(str, live))}")
            return

        from vigil.validation.campaign import run_campaign

        if purpose not in ("test", "validation"):
            from vigil.errors import BadRequest

            raise BadRequest(f"--purpose must be test or validation, not {purpose!r}")
        result = run_campaign(
            settings,
            profile=profile,
            seed=seed,
            json_out=json_out,
            report_dir=report,
            purpose=purpose,
            progress=lambda msg: typer.echo(f"validate: {msg}", err=True),
            record_dir=record,
        )
        typer.echo(
            f"event F1 {result['event_f1']}  precision {result['event_precision']}  recall {result['event_recall']}  "
            f"median detect {result['median_detect_s']} s  p90 {result['p90_detect_s']} s  "
            f"false alert runs/h {result['false_alert_runs_per_hour']}  report: {result['meta']['report_dir']}"
        )

    @app.command()
    def soak(
        copies: int = typer.Option(10, help="Copies of the stack's series to send besides Prometheus' own."),
        duration: float = typer.Option(180.0, help="Seconds to send them for."),
        warmup: float = typer.Option(60.0, help="Seconds after which memory growth is measured."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the figures and timelines here."),
        plot_out: Path | None = typer.Option(
            None, "--plot", help="Write memory, latency and lag over time here (PNG)."
        ),
    ) -> None:
        """Load the running stack's vigil serve with N copies of its own series: latency, memory, lag."""
        import json

        from vigil.config import load_settings
        from vigil.jsonsafe import json_safe
        from vigil.validation.soak import SoakConfig, plot, run_soak

        report = run_soak(
            load_settings(),
            SoakConfig(copies=copies, duration_s=duration, warmup_s=warmup),
            progress=lambda msg: typer.echo(f"soak: {msg}", err=True),
        )
        summary = report.summary()
        if json_out:
            timelines = {"rss_mb": report.rss, "step_latency_s": report.step_latency, "own_entity_lag_s": report.lag}
            json_out.write_text(json.dumps(json_safe({**summary, **timelines}), indent=1))
        if plot_out:
            plot(report, plot_out)
        for key, value in summary.items():
            typer.echo(f"{key:32} {value}")
