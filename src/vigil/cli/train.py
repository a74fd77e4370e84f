"""CLI commands: ``train``, ``models list|show|compare|promote|rollback|mode``, ``drift``."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import typer

from vigil.jsonsafe import json_safe

models_app = typer.Typer(
    help="Registered models: versions, metrics, champion/challenger aliases.", no_args_is_help=True
)

# Shown by `models list` / `compare` first; everything else follows alphabetically.
KEY_METRICS = (
    "holdout_event_f1",
    "holdout_auc_pr",
    "holdout_false_runs",
    "holdout_alert_rate",
    "holdout_calibration_drift",
    "cv_event_f1",
    "cv_auc_pr",
    "cv_alert_rate",
    "cv_calibration_drift",
    "cv_score_stability",
)


def _settings() -> Any:
    from vigil.config import load_settings

    return load_settings()


def _registry() -> Any:
    from vigil.registry import ModelRegistry

    return ModelRegistry(_settings())


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(json_safe(data), indent=2, sort_keys=False))


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _parse_params(items: list[str]) -> dict[str, Any]:
    from vigil.errors import BadRequest

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise BadRequest(f"--param {item!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def train(
    dataset: str = typer.Option("", "--dataset", help="Labelled dataset in SMD/ASD format (smd, asd)."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Dataset folder (default: data_dir/<dataset>)."),
    source: str = typer.Option("", "--source", help="'archive' or 'dataset' (default: dataset if --dataset is given)."),
    since: str = typer.Option("7d", "--since", help="Archive window to train on, e.g. 6h, 7d."),
    entity: list[str] = typer.Option([], "--entity", "-e", help="Only these entities (repeatable)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice; same data + seed = same model."),
    folds: int = typer.Option(3, "--folds", help="Time-ordered CV folds."),
    gap: int = typer.Option(60, "--gap", help="Steps between a fold's training end and its validation start."),
    max_rows: int = typer.Option(0, "--max-rows", help="Use only the first N rows of each split (quick runs)."),
    promote: str = typer.Option("auto", "--promote", help="auto (selection rule), always or never."),
    detectors: str = typer.Option("", "--detectors", help="Comma-separated detectors (default: the pipeline's)."),
    param: list[str] = typer.Option([], "--param", help="Pipeline parameter KEY=VALUE (JSON value), repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    nice: int = typer.Option(
        5,
        "--nice",
        min=0,
        max=19,
        help="Lower this process' CPU priority by N (Linux nice): training gives way to the host's services "
        "and, counted as niced CPU time, does not read as their load. 0 keeps it.",
    ),
) -> None:
    """Train, cross-validate and register one model version per entity."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vigil.durations import parse_duration
    from vigil.errors import BadRequest
    from vigil.procfs import lower_priority
    from vigil.registry import ModelRegistry
    from vigil.training import TrainConfig, from_archive, from_dataset, train_entity

    lower_priority(nice, whole_process=True)
    settings = _settings()
    kind = source or ("dataset" if dataset or data_dir else "archive")
    params = _parse_params(param)
    if detectors:
        params["detectors"] = [d.strip() for d in detectors.split(",") if d.strip()]
    config = TrainConfig(
        seed=seed, n_folds=folds, gap=gap, promote=promote, drift_window=settings.drift_window, model_params=params
    )
    if kind == "dataset":
        if data_dir is None and not dataset:
            raise BadRequest("--source dataset needs --dataset or --data-dir")
        directory = data_dir or settings.data_dir / dataset
        datasets = list(from_dataset(directory, entity or None, max_rows=max_rows or None))
    elif kind == "archive":
        datasets = list(from_archive(parse_duration(since), entity or None, settings=settings))
    else:
        raise BadRequest(f"unknown --source {kind!r}", hint="use archive or dataset")

    registry = ModelRegistry(settings)
    console = Console(stderr=True)
    results = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=as_json and not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("training", total=len(datasets) * config.stages())
        for data in datasets:
            bar.update(task, description=f"{data.entity}: fitting")

            def advance(name: str, stage: str) -> None:
                bar.update(task, advance=1, description=f"{name}: {stage}")

            results.append(train_entity(registry, data, config, progress=advance))
    if as_json:
        _emit_json([r.to_dict() for r in results])
        return
    for r in results:
        m = r.metrics
        verdict = "champion" if r.promoted else "challenger"
        typer.echo(
            f"{r.name} v{r.version} ({verdict}: {r.decision}) "
            f"holdout event F1 {_fmt(m.get('holdout_event_f1'))}, AUC-PR {_fmt(m.get('holdout_auc_pr'))}, "
            f"alert rate {_fmt(m.get('holdout_alert_rate'))}, {r.duration_s:.1f}s"
        )


@models_app.command("list")
def models_list(
    name: str = typer.Argument("", help="Only this model (entity)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every registered version with its aliases and key metrics."""
    versions = _registry().list_versions(name or None)
    if as_json:
        _emit_json([v.to_dict() for v in versions])
        return
    from rich.table import Table

    table = Table("model", "version", "aliases", "event F1", "AUC-PR", "alert rate", "data hash")
    for v in versions:
        table.add_row(
            v.name,
            v.version,
            ",".join(v.aliases),
            _fmt(v.metrics.get("holdout_event_f1", v.metrics.get("cv_event_f1"))),
            _fmt(v.metrics.get("holdout_auc_pr", v.metrics.get("cv_auc_pr"))),
            _fmt(v.metrics.get("holdout_alert_rate", v.metrics.get("cv_alert_rate"))),
            v.data_hash[:12],
        )
    _console().print(table)


@models_app.command("show")
def models_show(
    name: str = typer.Argument(..., help="Model (entity) name."),
    ref: str = typer.Argument("champion", help="Version number or alias."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One version: metrics, parameters, training window, selection decision."""
    registry = _registry()
    info = registry.get(name, ref)
    training = registry.bundle_json(info.name, info.version, "training.json")
    card = registry.bundle_json(info.name, info.version, "card.json")
    data = {
        **info.to_dict(),
        "aliases_now": registry.aliases(info.name),
        "mode": registry.mode(info.name),
        "training_window": training.get("window"),
        "selection": training.get("selection"),
        "folds": training.get("folds"),
        "features": card.get("feature_names") or card.get("features"),
        "library_versions": card.get("library_versions"),
    }
    if as_json:
        _emit_json(data)
        return
    typer.echo(f"{info.name} v{info.version}  aliases: {','.join(info.aliases) or '-'}  run {info.run_id}")
    typer.echo(
        f"mode: {data['mode']}" + ("  (scored and exported, never alerting)" if data["mode"] == "shadow" else "")
    )
    typer.echo(f"data hash {info.data_hash}  window {data['training_window']}")
    typer.echo(f"selection: {data['selection']}")
    for k in sorted(info.metrics, key=_metric_order):
        typer.echo(f"  {k:34s} {_fmt(info.metrics[k])}")


@models_app.command("compare")
def models_compare(
    refs: list[str] = typer.Argument(..., help="NAME A B (versions or aliases), or NAME:A NAME:B."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Metrics of two versions side by side."""
    from vigil.errors import BadRequest

    if len(refs) == 3:
        left, right = (refs[0], refs[1]), (refs[0], refs[2])
    elif len(refs) == 2 and all(":" in r for r in refs):
        left, right = tuple(refs[0].rsplit(":", 1)), tuple(refs[1].rsplit(":", 1))
    else:
        raise BadRequest("compare takes NAME A B or NAME:A NAME:B")
    registry = _registry()
    a, b = registry.get(*left), registry.get(*right)
    keys = sorted(set(a.metrics) | set(b.metrics), key=_metric_order)
    rows = [{"metric": k, "a": a.metrics.get(k), "b": b.metrics.get(k)} for k in keys]
    if as_json:
        _emit_json({"a": a.to_dict(), "b": b.to_dict(), "metrics": rows})
        return
    from rich.table import Table

    table = Table(
        "metric", f"{a.name} v{a.version} {','.join(a.aliases)}", f"{b.name} v{b.version} {','.join(b.aliases)}"
    )
    for row in rows:
        table.add_row(row["metric"], _fmt(row["a"]), _fmt(row["b"]))
    _console().print(table)


@models_app.command("promote")
def models_promote(
    name: str = typer.Argument(..., help="Model (entity) name."),
    version: str = typer.Argument(..., help="Version to promote."),
    alias: str = typer.Option("champion", "--alias", help="champion or challenger."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Point an alias at a version (verified first); one atomic alias move."""
    move = _registry().promote(name, version, alias=alias)
    _show_move(move, as_json)


@models_app.command("rollback")
def models_rollback(
    name: str = typer.Argument(..., help="Model (entity) name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Move champion back to the version it held before; one atomic alias move."""
    _show_move(_registry().rollback(name), as_json)


@models_app.command("mode")
def models_mode(
    name: str = typer.Argument(..., help="Model (entity) name."),
    mode: str = typer.Argument("", help="paging or shadow; empty: print the current mode."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Let an entity's model page, or run it in shadow (scored and exported, never alerting).

    Serving follows the change at its next model poll; alerts firing when a model goes into shadow
    are resolved.
    """
    registry = _registry()
    previous = registry.mode(name)
    if mode:
        registry.set_mode(name, mode)
    current = mode or previous
    if as_json:
        _emit_json({"name": name, "previous": previous, "mode": current})
    else:
        typer.echo(f"{name}: {previous} -> {current}" if mode else f"{name}: {current}")


def _show_move(move: Any, as_json: bool) -> None:
    if as_json:
        _emit_json(move.to_dict())
    else:
        typer.echo(f"{move.name}: {move.alias} {move.previous or '-'} -> {move.current}")


def drift(
    entity: list[str] = typer.Option([], "--entity", "-e", help="Only these entities (repeatable)."),
    since: str = typer.Option("1d", "--since", help="Archive window to check, e.g. 1h, 1d."),
    dataset: str = typer.Option("", "--dataset", help="Check a labelled dataset instead of the archive."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="The dataset's folder."),
    split: str = typer.Option("test", "--split", help="Dataset split: train or test."),
    rows: str = typer.Option("", "--rows", help="Dataset rows START:END (default: the last drift window)."),
    ref: str = typer.Option("champion", "--ref", help="Model version or alias to check against."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Drift of recent data against each model's training reference (PSI, KS, score, alert rate)."""
    from vigil.durations import parse_duration
    from vigil.errors import NotFound
    from vigil.training import from_archive, from_dataset
    from vigil.training.drift_check import check_entity

    settings = _settings()
    registry = _registry()
    frames: dict[str, Any] = {}
    if dataset or data_dir:
        directory = data_dir or settings.data_dir / dataset
        for data in from_dataset(directory, entity or None):
            frame = data.holdout if split == "test" else data.train
            start, _, end = rows.partition(":")
            if rows:
                frame = frame.iloc[int(start or 0) : int(end) if end else None]
            else:
                frame = frame.iloc[-settings.drift_window :]
            frames[data.entity] = frame
    else:
        for data in from_archive(parse_duration(since), entity or None, settings=settings):
            frames[data.entity] = data.train
    report: dict[str, Any] = {}
    for name, frame in frames.items():
        try:
            version, snap = check_entity(registry, name, frame, ref=ref)
        except NotFound as exc:
            if entity:  # asked for by name: say so loudly
                raise
            report[name] = {"version": None, "error": str(exc)}
            continue
        report[name] = {"version": version, **snap.to_dict()}
    if as_json:
        _emit_json(report)
        return
    for name, r in report.items():
        if r.get("error"):
            typer.echo(f"{name}: {r['error']}")
            continue
        state = "DRIFT (" + ", ".join(r["reasons"]) + ")" if r["drifted"] else "no drift"
        top = sorted(((f, v) for f, v in r["features"].items() if v["psi"] is not None), key=lambda kv: -kv[1]["psi"])[
            :5
        ]
        typer.echo(
            f"{name} v{r['version']}: {state}; {r['drifted_fraction']:.0%} of features drifted, "
            f"score PSI {_fmt(r['score_psi'])}, alert rate {_fmt(r['alert_rate'])} "
            f"(training {_fmt(r['reference_alert_rate'])}), {r['samples']} samples"
        )
        for f, v in top:
            mark = "*" if v["drifted"] else " "
            typer.echo(f"  {mark} {f:24s} PSI {_fmt(v['psi'])} (limit {_fmt(v['psi_limit'])})  KS {_fmt(v['ks'])}")


def _console() -> Any:
    import shutil

    from rich.console import Console

    # Pipes get rich's 80-column default, which truncates model names; tables are for reading.
    return Console(width=max(140, shutil.get_terminal_size().columns))


def _metric_order(key: str) -> tuple[int, str]:
    return (KEY_METRICS.index(key) if key in KEY_METRICS else len(KEY_METRICS), key)


def retrain(
    follow: bool = typer.Option(False, "--follow", help="Keep running: retrain on schedule, check drift."),
    metrics_port: int = typer.Option(0, "--metrics-port", help="Serve vigil_drift_* and retrain metrics here."),
    as_json: bool = typer.Option(False, "--json", help="One-shot: print the drift check as JSON."),
    nice: int = typer.Option(
        10,
        "--nice",
        min=0,
        max=19,
        help="Lower this process' CPU priority by N (Linux nice). Its drift checks load each champion and "
        "score the last window with it every drift_check_interval_s, and its retraining trains: background "
        "work that yields to the host's services and, counted as niced CPU time, does not read as their load. "
        "0 keeps it.",
    ),
) -> None:
    """Check every champion for drift against the archive and retrain what drifted; --follow keeps doing it."""
    import signal
    import threading

    from prometheus_client import start_http_server

    from vigil.config import load_settings
    from vigil.procfs import lower_priority
    from vigil.training.service import TrainerService

    lower_priority(nice, whole_process=True)
    settings = load_settings()
    service = TrainerService(settings)
    if not follow:
        snapshots = service.check_drift_once()
        for entity, reason in service.retrainer.status()["pending"].items():
            service.retrainer.run_once(entity, reason)
        report = {e: s.to_dict() for e, s in snapshots.items()}
        typer.echo(json.dumps(report, indent=2, default=str) if as_json else _drift_lines(report))
        return
    if metrics_port:
        start_http_server(metrics_port, addr=settings.bind_host, registry=service.metrics_registry())
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    service.start()
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()


def _drift_lines(report: dict[str, Any]) -> str:
    if not report:
        return "no champion to check yet"
    return "\n".join(
        f"{entity}: {'DRIFT (' + ','.join(snap.get('reasons', [])) + ')' if snap.get('drifted') else 'ok'}"
        for entity, snap in report.items()
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("train")(train)
    app.command("retrain")(retrain)
    app.command("drift")(drift)
    app.add_typer(models_app, name="models")
