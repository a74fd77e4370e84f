"""CLI commands for data: ``collect``, ``data stats``, ``quality``, ``datasets`` (+ ``fetch``)."""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import typer

data_app = typer.Typer(help="The metrics archive.", no_args_is_help=True)


def _settings() -> Any:
    from vigil.config import load_settings

    return load_settings()


def _client(url: str | None) -> Any:
    from vigil.prometheus import PromClient

    return PromClient(url or _settings().effective_prometheus_url)


def collect(
    follow: bool = typer.Option(False, "--follow", help="Keep collecting every collect_interval_s until stopped."),
    metrics_port: int = typer.Option(0, "--metrics-port", help="Serve vigil_data_* metrics on this port (--follow)."),
    match: str = typer.Option("", "--match", help="PromQL selector of the series to archive (collect_match)."),
    prometheus_url: str = typer.Option("", "--prometheus-url", help="Prometheus-compatible API (prometheus_url)."),
    step: float = typer.Option(0.0, "--step", help="Archive step in seconds (collect_step_s, else scrape interval)."),
    interval: float = typer.Option(0.0, "--interval", help="Seconds between cycles (collect_interval_s)."),
) -> None:
    """Pull series from Prometheus into the Parquet archive under $VIGIL_HOME/archive."""
    from vigil.ingest.archive import Archive
    from vigil.ingest.collector import CycleResult, MetricsCollector

    settings = _settings()
    step_s = step or settings.collect_step_s or settings.scrape_interval_s
    collector = MetricsCollector(
        _client(prometheus_url),
        Archive(settings.archive_dir),
        match=match or settings.collect_match,
        step_s=step_s,
        lag_s=settings.collect_lag_s,
        chunk_s=settings.collect_chunk_s,
        backfill_s=settings.collect_backfill_s,
        retention_s=settings.archive_retention_days * 86400,
    )

    def show(r: CycleResult) -> None:
        if r.windows == 0:
            typer.echo("collect: nothing new")
            return
        typer.echo(
            f"collect: {r.samples} samples of {r.series} series, {_iso(r.start_ms)} .. {_iso(r.end_ms)}"
            f" in {r.seconds:.2f}s ({r.rate:,.0f} samples/s)"
        )

    if not follow:
        show(collector.run_once())
        return
    if metrics_port:
        _serve_metrics(collector, settings.bind_host, metrics_port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo(f"collect: following {collector.client.base_url} every {interval or settings.collect_interval_s}s")
    collector.follow(interval or settings.collect_interval_s, stop, on_cycle=lambda r: (show(r), sys.stdout.flush()))


def _serve_metrics(collector: Any, host: str, port: int) -> None:
    from prometheus_client import start_http_server

    from vigil.errors import PortInUse
    from vigil.ingest.quality import DataQualityCollector
    from vigil.selfmetrics import component_registry

    registry = component_registry()
    registry.register(DataQualityCollector(collector.tracker))
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise PortInUse(
            f"cannot serve metrics on {host}:{port}: {exc.strerror}", hint="pick another --metrics-port"
        ) from None


@data_app.command("stats")
def data_stats(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Series, samples, time span and size of the archive."""
    from vigil.ingest.archive import Archive

    settings = _settings()
    stats = Archive(settings.archive_dir).stats()
    if as_json:
        typer.echo(json.dumps({**stats.to_dict(), "path": str(settings.archive_dir)}))
        return
    typer.echo(f"archive  {settings.archive_dir}")
    typer.echo(f"series   {stats.series:,}")
    typer.echo(f"samples  {stats.samples:,}")
    typer.echo(
        f"span     {stats.start.isoformat() if stats.start else '-'} .. {stats.end.isoformat() if stats.end else '-'}"
    )
    typer.echo(f"size     {stats.bytes:,} bytes in {stats.files} files")


def quality(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    window: float = typer.Option(300.0, "--window", help="Seconds of history to assess."),
    prometheus_url: str = typer.Option("", "--prometheus-url", help="Prometheus-compatible API (prometheus_url)."),
    match: str = typer.Option("", "--match", help="PromQL selector of the series to assess (collect_match)."),
) -> None:
    """Data-quality report: target health, completeness per metric family, gaps, NaNs, resets."""
    from vigil.ingest.quality_report import quality_report

    settings = _settings()
    step_s = settings.collect_step_s or settings.scrape_interval_s
    report = quality_report(
        _client(prometheus_url),
        match=match or settings.collect_match,
        window_s=window,
        step_s=step_s,
        lag_s=settings.collect_lag_s,
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    typer.echo(
        f"window {window:.0f}s at {step_s:g}s steps: {report.series} series, completeness {report.completeness:.2%}"
    )
    for t in report.targets:
        state = "up" if t.up >= 1 else "DOWN"
        typer.echo(
            f"  target {t.job}/{t.instance}: {state}, scrape {_fmt(t.scrape_duration_s, 3)}s,"
            f" {_fmt(t.samples_scraped, 0)} samples"
        )
    worst = sorted(report.families.values(), key=lambda f: (f.completeness, f.family))
    incomplete = [f for f in worst if f.completeness < 1]
    typer.echo(f"  {len(report.families)} metric families, {len(incomplete)} incomplete")
    for f in incomplete[:15]:
        typer.echo(f"    {f.family}: {f.completeness:.1%} ({f.missing_steps} missing steps, {f.series} series)")
    resets = sum(f.counter_resets for f in report.families.values())
    nans = sum(f.nan_samples for f in report.families.values())
    typer.echo(f"  stale series {report.stale_series}, NaN samples {nans}, counter resets {resets}")


def _fmt(v: float, digits: int) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _iso(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


datasets_app = typer.Typer(help="Real labelled datasets (SMD/ASD/NAB format).", no_args_is_help=False)


@datasets_app.callback(invoke_without_command=True)
def datasets_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the datasets found in VIGIL_DATA_DIR and $VIGIL_HOME/datasets."""
    if ctx.invoked_subcommand is not None:
        return
    from vigil.config import load_settings
    from vigil.datasets import discover

    settings = load_settings()
    roots = [settings.data_dir, settings.home / "datasets"]
    found = discover(roots)
    if as_json:
        typer.echo(json.dumps({"roots": [str(r) for r in roots], "datasets": [d.to_dict() for d in found]}, indent=2))
        return
    if not found:
        typer.echo(f"no datasets under {' or '.join(str(r) for r in roots)}; try `vigil datasets fetch nab`")
        return
    for info in found:
        sample = ", ".join(info.entities[:3]) + (", ..." if len(info.entities) > 3 else "")
        typer.echo(f"{info.name:<6} {info.format:<9} {len(info.entities):>3} entities  {info.path}  ({sample})")


@datasets_app.command("fetch")
def datasets_fetch(name: str = typer.Argument(..., help="Dataset: nab, smd or asd.")) -> None:
    """Download a dataset from its original public source into $VIGIL_HOME/datasets."""
    from vigil.config import load_settings
    from vigil.datasets import fetch_dataset

    dest = fetch_dataset(name, load_settings().home / "datasets")
    typer.echo(f"{name}: {dest}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("collect")(collect)
    app.command("quality")(quality)
    app.add_typer(data_app, name="data")
    app.add_typer(datasets_app, name="datasets")
