"""CLI command ``vigil bench``: the offline benchmark on real labelled data (SMD, ASD, NAB).

Reads the dataset folders (formats in ``../shared/data/*/README.md``), fits one model per entity on
its training part only, writes ``OUTDIR/<entity>.csv`` (``score,alert``, one row per test row; NAB:
one row per series row) and ``OUTDIR/summary.json`` (per-entity and macro metrics of the ensemble,
each single detector and the PCA baseline).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer

from vigil.errors import DataError, NotFound
from vigil.jsonsafe import json_safe

DATASETS = ("smd", "asd", "nab")
# Spacing of the rows of the timestamp-less datasets; time-of-day features come from the step index.
STEP_SECONDS = {"smd": 60.0, "asd": 300.0}
NAB_TRAIN_FRACTION = 0.15


@dataclass
class Entity:
    name: str  # also the CSV file stem
    frame: pd.DataFrame
    n_train: int
    labels: np.ndarray  # one per row after n_train
    output_from: int


def resolve_dataset_dir(data_dir: Path, dataset: str) -> Path:
    """Accept either the folder holding all datasets or the dataset's own folder."""
    for cand in (data_dir / dataset, data_dir):
        if (cand / "train").is_dir() or (cand / "labels").is_dir():
            return cand
    raise NotFound(f"no {dataset} data under {data_dir}", hint="pass --data-dir pointing at ../shared/data")


def list_entities(dataset: str, root: Path) -> list[str]:
    if dataset == "nab":
        return sorted(str(p.relative_to(root / "data")) for p in (root / "data").glob("*/*.csv"))
    return sorted(p.stem for p in (root / "train").glob("*.txt"))


def load_entity(dataset: str, root: Path, name: str) -> Entity:
    """Read one entity of SMD/ASD (train/test/test_label) or NAB (series + label windows)."""
    if dataset == "nab":
        raw = pd.read_csv(root / "data" / name)
        ts = pd.DatetimeIndex(pd.to_datetime(raw["timestamp"]))
        index = ts
        if not ts.is_monotonic_increasing or ts.has_duplicates:
            # Four NAB files repeat or step back timestamps (local-time clock changes). Their rows
            # are still consecutive samples, so the model sees them on a regular grid in row order;
            # labels below still come from the recorded timestamps.
            step = pd.Series(ts).diff().dt.total_seconds().median()
            index = pd.DatetimeIndex(ts[0] + pd.to_timedelta(np.arange(len(ts)) * step, unit="s"))
        frame = pd.DataFrame({"value": raw["value"].to_numpy(dtype=np.float64)}, index=index)
        windows = json.loads((root / "labels" / "combined_windows.json").read_text()).get(name, [])
        labels = np.zeros(len(frame), dtype=np.int8)
        for lo, hi in windows:
            labels[(ts >= pd.Timestamp(lo)) & (ts <= pd.Timestamp(hi))] = 1
        n_train = int(NAB_TRAIN_FRACTION * len(frame))
        # The CSV name is the series' relative path with "/" replaced by "__".
        return Entity(name.removesuffix(".csv").replace("/", "__"), frame, n_train, labels[n_train:], 0)
    train = np.loadtxt(root / "train" / f"{name}.txt", delimiter=",", ndmin=2)
    test = np.loadtxt(root / "test" / f"{name}.txt", delimiter=",", ndmin=2)
    labels = np.loadtxt(root / "test_label" / f"{name}.txt", ndmin=1).astype(np.int8)
    if len(labels) != len(test):
        raise DataError(f"{name}: {len(labels)} labels for {len(test)} test rows")
    values = np.vstack([train, test])
    # The test half follows the training half directly; the step index stands in for time.
    index = pd.to_datetime(np.arange(len(values)) * STEP_SECONDS[dataset], unit="s")
    frame = pd.DataFrame(values, index=index, columns=[f"dim_{j + 1:02d}" for j in range(values.shape[1])])
    return Entity(name, frame, len(train), labels, len(train))


def _work(dataset: str, root: str, name: str, params: dict[str, Any]) -> Any:
    from threadpoolctl import threadpool_limits

    from vigil.evaluation.bench import run_entity

    # One entity per core: nested BLAS/OpenMP/torch threads would only fight over the same cores.
    with threadpool_limits(1):
        ent = load_entity(dataset, Path(root), name)
        return run_entity(
            ent.name, ent.frame, ent.n_train, ent.labels, output_from=ent.output_from, pipeline_params=params
        )


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_bench(
    dataset: str,
    data_dir: Path,
    out: Path,
    detectors: Sequence[str] | None = None,
    jobs: int = 1,
    entities: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the benchmark and write the CSVs and ``summary.json``; returns the summary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vigil.evaluation.bench import summarize

    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}", hint=f"choose from {', '.join(DATASETS)}")
    root = resolve_dataset_dir(Path(data_dir), dataset)
    names = list_entities(dataset, root)
    if entities:
        missing = sorted(set(entities) - set(names))
        if missing:
            raise NotFound(f"unknown {dataset} entities {missing}", hint=f"known: {', '.join(names[:10])}")
        names = [n for n in names if n in set(entities)]
    params: dict[str, Any] = {"seed": seed}
    if detectors:
        params["detectors"] = list(detectors)
    else:
        # Every detector is reported on its own; those outside the default ensemble run as shadows.
        from vigil.detectors.pipeline import DEFAULT_DETECTORS, DETECTORS

        params["shadow_detectors"] = [d for d in DETECTORS if d not in DEFAULT_DETECTORS]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = []
    with Progress(
        TextColumn(f"bench {dataset}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        disable=not progress,
    ) as bar:
        task = bar.add_task("", total=len(names))
        if jobs <= 1:
            done = (_work(dataset, str(root), n, params) for n in names)
            for res in done:
                results.append(_write(out, res))
                bar.update(task, advance=1, description=res.name)
        else:
            with ProcessPoolExecutor(
                max_workers=jobs, mp_context=get_context("spawn"), initializer=_init_worker
            ) as pool:
                futures = [pool.submit(_work, dataset, str(root), n, params) for n in names]
                for fut in as_completed(futures):
                    res = fut.result()
                    results.append(_write(out, res))
                    bar.update(task, advance=1, description=res.name)
    results.sort(key=lambda r: r.name)
    summary = {
        "dataset": dataset,
        "data_dir": str(root),
        "detectors": params.get("detectors", "default"),
        "shadow_detectors": params.get("shadow_detectors", []),
        "seed": seed,
        "jobs": jobs,
        "cores": os.cpu_count(),
        "runtime_s": round(time.perf_counter() - start, 1),
        "protocol": {
            "train": "NAB: first 15% of each series" if dataset == "nab" else "the entity's train file",
            "threshold": "from cross-fitted training scores only (no test labels)",
            "event": "maximal run of label 1; detected if an alert falls in it or within "
            "max(5, 10% of its length) rows after",
            "false_run": "alert run overlapping no event window",
            "point_adjustment": "none",
        },
        **summarize(results),
    }
    (out / "summary.json").write_text(json.dumps(json_safe(summary), indent=1))
    return summary


def plot_entity(dataset: str, root: Path, out: Path, name: str, png: Path, threshold: float | None = None) -> None:
    """Score and alerts of one benchmark entity against its labels, as a PNG (for docs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source = name.replace("__", "/") + ".csv" if dataset == "nab" else name
    ent = load_entity(dataset, root, source)
    csv = pd.read_csv(out / f"{ent.name}.csv")
    start = ent.n_train - ent.output_from
    score, alert = csv["score"].to_numpy()[start:], csv["alert"].to_numpy()[start:]
    surprisal = -np.log1p(-np.minimum(score, 1 - 1e-15))
    x = np.arange(len(score))
    fig, ax = plt.subplots(figsize=(11, 2.8), dpi=90)
    ax.fill_between(
        x,
        0,
        1,
        where=ent.labels.astype(bool),
        color="tab:red",
        alpha=0.25,
        step="mid",
        transform=ax.get_xaxis_transform(),
        label="labelled anomaly",
    )
    ax.plot(x, surprisal, lw=0.6, color="tab:blue", label="ensemble score, -log(1 - score)")
    if threshold is not None:
        ax.axhline(-np.log1p(-threshold), color="k", lw=0.7, ls="--", label="threshold (from training)")
    ax.fill_between(
        x,
        0,
        0.07,
        where=alert.astype(bool),
        color="tab:orange",
        step="mid",
        transform=ax.get_xaxis_transform(),
        label="alert (bottom strip)",
    )
    ax.set_xlim(0, len(x))
    ax.set_xlabel("test row")
    ax.set_title(f"{dataset.upper()} {ent.name}", fontsize=10, pad=26)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=7, ncol=4, frameon=False)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)


def _write(out: Path, res: Any) -> Any:
    res.output.to_csv(out / f"{res.name}.csv", index=False, float_format="%.17g")
    return res


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""

    @app.command()
    def bench(
        dataset: str = typer.Option(..., "--dataset", help="smd, asd, nab, or live (recorded validation runs)"),
        data_dir: Path | None = typer.Option(None, "--data-dir", help="folder with the datasets (VIGIL_DATA_DIR)"),
        out: Path | None = typer.Option(None, "--out", help="output folder for <entity>.csv and summary.json"),
        detectors: list[str] | None = typer.Option(
            None, "--detectors", help="subset of iforest,lof,ocsvm,autoencoder (repeat or comma-separate)"
        ),
        jobs: int = typer.Option(2, "--jobs", help="entities scored in parallel (one process each)"),
        entity: list[str] | None = typer.Option(None, "--entity", help="only these entities (repeatable)"),
        seed: int = typer.Option(0, "--seed"),
        plots: Path | None = typer.Option(None, "--plots", help="also write score-vs-label PNGs into this folder"),
        plot_entities: int = typer.Option(3, "--plot-entities", help="how many entities to plot"),
    ) -> None:
        """Benchmark the ensemble, each detector and a PCA baseline on real labelled data."""
        from rich.console import Console
        from rich.table import Table

        from vigil.config import load_settings

        if dataset == "live":
            _bench_live(data_dir, out)
            return
        if out is None:
            raise typer.BadParameter("--out is required for smd, asd and nab")
        dets = [d.strip() for item in (detectors or []) for d in item.split(",") if d.strip()] or None
        root = data_dir or load_settings().data_dir
        summary = run_bench(dataset, root, out, detectors=dets, jobs=jobs, entities=entity, seed=seed)
        table = Table(title=f"{dataset}: macro over {len(summary['entities'])} entities ({summary['runtime_s']} s)")
        for col in ("method", "event F1", "event P", "event R", "AUC-PR", "point F1", "false runs/1k", "delay"):
            table.add_column(col)
        for method, m in summary["macro"].items():
            table.add_row(
                method,
                *(
                    _fmt(m.get(k))
                    for k in (
                        "event_f1",
                        "event_precision",
                        "event_recall",
                        "auc_pr",
                        "point_f1",
                        "false_runs_per_1k",
                        "mean_delay",
                    )
                ),
            )
        Console().print(table)
        if plots is not None:
            droot = resolve_dataset_dir(Path(root), dataset)
            for name in list(summary["entities"])[:plot_entities]:
                thr = summary["entities"][name].get("threshold")
                plot_entity(dataset, droot, Path(out), name, Path(plots) / f"bench_{dataset}_{name}.png", thr)
        typer.echo(f"wrote {out}/summary.json")


def _bench_live(data_dir: Path | None, out: Path | None) -> None:
    """Replay recorded validation runs through the serving engine and print the campaign's metrics."""
    from rich.console import Console
    from rich.table import Table

    from vigil.validation import recording

    if data_dir is None:
        raise typer.BadParameter("--data-dir must name a recording or a folder of recordings")
    results = []
    for path in recording.find_recordings(data_dir):
        typer.echo(f"replaying {path} ...", err=True)
        results.append(recording.replay(recording.open_recording(path)))
    table = Table(title=f"live recordings replayed through the serving engine ({len(results)})")
    cols = ("event_f1", "event_precision", "event_recall", "onset_recall", "false_alert_runs",
            "quiet_hours", "false_alert_runs_per_hour", "quiet_alarm_fraction", "median_detect_s")  # fmt: skip
    table.add_column("recording")
    for c in cols:
        table.add_column(c)
    rows = [(Path(r["recording"]).name, r) for r in results] + [("all", recording.combine(results))]
    for name, r in rows:
        table.add_row(name, *(_fmt(r.get(c)) if isinstance(r.get(c), float) else str(r.get(c)) for c in cols))
    Console().print(table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        summary = {
            "recordings": [{k: v for k, v in r.items() if k != "alarms"} for r in results],
            "combined": recording.combine(results),
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        typer.echo(f"wrote {out}/summary.json")


def _fmt(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"
