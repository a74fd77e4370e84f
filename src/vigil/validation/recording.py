"""Recorded live datasets: what a campaign's models saw, saved so it can be replayed in seconds.

A live validation run takes 15-75 minutes; tuning an alarm rule against it must not. A recording is
a small self-contained folder::

    recording.json      format, profile, seed, step, scored period, tail, fault windows (the labels),
                        per entity its input file, rows, training span and the model versions
                        served with the step each was swapped in
    inputs/<model>.parquet   the entity's model inputs (catalogue signals) at step resolution
    quiet.parquet       the scoring grid with the fault labels and the quiet-time mask
    live_alarms.parquet what serving exported live (``vigil_anomaly`` per entity, as Prometheus scraped it)
    models/<model>/<version>/   each served model's registry bundle (verified by its own manifest)
    README.md           what this is and how to replay it
    manifest.json       sha256 of every other file (written last)

:func:`replay` streams the inputs through :class:`~vigil.detection.engine.DetectionEngine` (the
object ``vigil serve`` scores with, fast path included), swapping in each recorded model version at
its recorded step, and scores the alarms with the campaign's own :func:`score_campaign`.
``refit`` instead fits a fresh model on each entity's recorded training span with other parameters:
the loop for tuning, measured on recordings the way the live stack would be.

A recording is written into a temporary folder and renamed into place, so an interrupted write
leaves nothing that looks complete; :func:`open_recording` refuses a folder whose manifest is
missing, lists a missing file, does not match a file's hash, or whose inputs disagree in length
with what ``recording.json`` says, naming the file.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.errors import DataError
from vigil.registry.bundle import sha256_file
from vigil.timeindex import unix_seconds

FORMAT = "vigil.live-recording/1"
MANIFEST = "manifest.json"
META = "recording.json"

README = """# A recorded live validation run

Recorded by `vigil validate --record` ({profile} profile, seed {seed}, {started}). It holds what
Vigil's models saw during the run, not the raw Prometheus series:

- `inputs/*.parquet`: per entity, the model inputs (the catalogue's signals) at {step_s} s steps,
  from the start of the baseline the models were trained on to the end of the scored period.
- `recording.json`: the fault windows (the labels), the scored period, the tail after each fault
  that still counts for it, per entity its training span and each model version served with the
  time it was swapped in.
- `quiet.parquet`: the scoring grid with the fault label and the quiet-time mask of every step.
- `live_alarms.parquet`: `vigil_anomaly` per entity as Prometheus scraped it during the run.
- `models/`: every model version served, as the registry's verified bundles.
- `manifest.json`: the sha256 of every other file.

Replay it through the serving code path with
`vigil bench --dataset live --data-dir <this folder or its parent>`.
"""


@dataclass(frozen=True)
class EntityRecording:
    entity: str
    model: str  # registry model name, also the file stem
    inputs: pd.DataFrame
    training: tuple[float, float]  # unix seconds
    versions: list[dict[str, Any]]  # {"version", "served_from", "dir"} in serving order


@dataclass(frozen=True)
class Recording:
    path: Path
    meta: dict[str, Any]
    entities: list[EntityRecording]
    live_alarms: pd.DataFrame  # index unix seconds, one 0/1 column per entity

    @property
    def faults(self) -> list[dict[str, Any]]:
        return list(self.meta["faults"])


# --- writing ---------------------------------------------------------------------------------------
def write_recording(
    dest: Path,
    *,
    meta: Mapping[str, Any],
    inputs: Mapping[str, pd.DataFrame],
    models: Mapping[str, Sequence[tuple[str, float, Path]]],
    training: Mapping[str, tuple[float, float]],
    grid: pd.DataFrame,
    live_alarms: pd.DataFrame,
) -> Path:
    """Write a recording at ``dest`` (which must not exist) atomically.

    ``inputs``: entity -> signal frame (UTC DatetimeIndex); ``models``: entity -> [(version,
    served_from, bundle dir)]; ``training``: entity -> (start, end); ``grid``: ``t``, ``label``,
    ``quiet`` columns of the scoring grid.
    """
    from vigil.registry import model_name

    dest = Path(dest)
    if dest.exists():
        raise DataError(f"{dest} already exists", hint="record into a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        entities = {}
        (tmp / "inputs").mkdir()
        for entity, frame in inputs.items():
            name = model_name(entity)
            frame.to_parquet(tmp / "inputs" / f"{name}.parquet")
            versions = []
            for version, served_from, bundle in models.get(entity, []):
                rel = Path("models") / name / str(version)
                shutil.copytree(bundle, tmp / rel)
                versions.append({"version": str(version), "served_from": float(served_from), "dir": str(rel)})
            start, end = training[entity]
            entities[entity] = {
                "model": name,
                "file": f"inputs/{name}.parquet",
                "rows": len(frame),
                "columns": [str(c) for c in frame.columns],
                "training": [float(start), float(end)],
                "versions": versions,
            }
        grid.to_parquet(tmp / "quiet.parquet")
        live_alarms.to_parquet(tmp / "live_alarms.parquet")
        full = {"format": FORMAT, **meta, "grid_rows": len(grid), "entities": entities}
        (tmp / META).write_text(json.dumps(full, indent=1, allow_nan=False))
        fields = {k: full.get(k, "?") for k in ("profile", "seed", "started", "step_s")}
        (tmp / "README.md").write_text(README.format(**fields))
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {str(p.relative_to(tmp)): sha256_file(p) for p in files}
        (tmp / MANIFEST).write_text(json.dumps({"format": FORMAT, "files": manifest}, indent=1))
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def record_from_stack(
    settings: Any,
    dest: Path,
    *,
    trained: Sequence[Mapping[str, Any]],
    faults: Sequence[Mapping[str, Any]],
    t0: float,
    t1: float,
    tail_s: float,
    meta: Mapping[str, Any],
) -> Path:
    """Record a campaign from the running stack: inputs from Prometheus (the values the archive and
    remote_write carry), served versions from ``vigil_model_info``, bundles from the registry."""
    from vigil.ingest import signals
    from vigil.prometheus import PromClient
    from vigil.registry import ModelRegistry
    from vigil.validation.scoring import Window, grid, label_grid, quiet_mask

    prom = PromClient(settings.effective_prometheus_url)
    registry = ModelRegistry(settings)
    step_s = float(settings.scrape_interval_s)
    served = _served_from(prom, t0 - 3600, t1, step_s)
    inputs, models, training = {}, {}, {}
    for entry in trained:
        entity, name = str(entry["entity"]), str(entry["name"])
        versions = since_trained(served.get(name) or served.get("default") or [], str(entry["version"]), t0)
        cards = [registry.bundle_json(name, v, "card.json") for v, _t in versions]
        window = cards[0]["training_window"]
        start = float(window["start"])
        frame = signals.load_entity_frame(prom, entity, start=start, end=t1, step=step_s, settings=settings)
        inputs[entity] = frame
        training[entity] = (start, float(window["end"]))
        models[entity] = [(v, t, registry.fetch(name, v)) for v, t in versions]
    windows = [Window(str(f["type"]), float(f["start"]), float(f["end"])) for f in faults]
    ts = grid(t0, t1, step_s)
    grid_frame = pd.DataFrame({"t": ts, "label": label_grid(ts, windows), "quiet": quiet_mask(ts, windows, tail_s)})
    fault_meta = [{k: f[k] for k in ("type", "start", "end", "params") if k in f} for f in faults]
    full = {**meta, "step_s": step_s, "scored_period": [t0, t1], "tail_s": tail_s, "faults": fault_meta}
    live = {
        str(s.labels.get("entity", "")): pd.Series(np.asarray(s.values, dtype=np.float64), index=s.timestamps)
        for s in prom.query_range("vigil_anomaly", t0, t1, step_s)
    }
    live_frame = pd.DataFrame(live).sort_index().rename_axis("t")
    return write_recording(
        dest, meta=full, inputs=inputs, models=models, training=training, grid=grid_frame, live_alarms=live_frame
    )


def since_trained(served: Sequence[tuple[str, float]], trained: str, t0: float) -> list[tuple[str, float]]:
    """The versions served from the campaign's own trained one on. A stack that was up before the
    campaign served its earlier champion first (in the seed-6029417 run, the previous run's model
    for its first 16 minutes); that one scored nothing of the campaign and was not trained on its
    baseline, and recording it made the recording's training span the earlier run's."""
    versions = list(served)
    mine = [i for i, (v, _t) in enumerate(versions) if v == trained]
    return versions[mine[0] :] if mine else [(trained, t0)]


def _served_from(prom: Any, start: float, end: float, step_s: float) -> dict[str, list[tuple[str, float]]]:
    """Per registered model, ``(version, first time serving exported it)`` in serving order."""
    from vigil.errors import VigilError

    out: dict[str, list[tuple[str, float]]] = {}
    try:
        series = prom.query_range("vigil_model_info", start, end, step_s)
    except VigilError:
        return out
    for s in series:
        present = np.asarray(s.timestamps)[np.isfinite(np.asarray(s.values, dtype=np.float64))]
        if len(present):
            out.setdefault(s.labels.get("model", ""), []).append((s.labels.get("version", ""), float(present.min())))
    return {k: sorted(v, key=lambda p: p[1]) for k, v in out.items()}


# --- reading ---------------------------------------------------------------------------------------
def open_recording(path: Path) -> Recording:
    """Verify and load a recording; :class:`DataError` naming the file for anything incomplete."""
    path = Path(path)
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise DataError(f"{manifest_file}: missing, the recording is incomplete", hint="record the run again")
    try:
        manifest = json.loads(manifest_file.read_text())
        files: dict[str, str] = dict(manifest["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{manifest_file}: unreadable manifest ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise DataError(f"{manifest_file}: format {manifest.get('format')!r}, expected {FORMAT}")
    for rel, digest in files.items():
        file = path / rel
        if not file.is_file():
            raise DataError(f"{file}: listed in the manifest but missing")
        if sha256_file(file) != digest:
            raise DataError(f"{file}: sha256 does not match the manifest (changed or truncated)")
    if META not in files:
        raise DataError(f"{path / META}: not in the manifest")
    meta = json.loads((path / META).read_text())
    entities = []
    for entity, info in meta["entities"].items():
        file = path / info["file"]
        if info["file"] not in files:
            raise DataError(f"{file}: not in the manifest")
        frame = pd.read_parquet(file)
        if len(frame) != int(info["rows"]) or [str(c) for c in frame.columns] != list(info["columns"]):
            raise DataError(
                f"{file}: {len(frame)} rows x {frame.shape[1]} columns, but {META} records "
                f"{info['rows']} x {len(info['columns'])}"
            )
        if not isinstance(frame.index, pd.DatetimeIndex) or not frame.index.is_monotonic_increasing:
            raise DataError(f"{file}: the index must be increasing timestamps")
        for v in info["versions"]:
            if not (path / v["dir"]).is_dir():
                raise DataError(f"{path / v['dir']}: model version {v['version']} is missing")
        entities.append(EntityRecording(entity, info["model"], frame, tuple(info["training"]), list(info["versions"])))
    grid = pd.read_parquet(path / "quiet.parquet")
    if len(grid) != int(meta["grid_rows"]):
        raise DataError(f"{path / 'quiet.parquet'}: {len(grid)} rows, but {META} records {meta['grid_rows']}")
    live = pd.read_parquet(path / "live_alarms.parquet")
    return Recording(path, meta, entities, live)


def alarm_runs(alarm: pd.Series) -> list[tuple[float, float]]:
    """``(start, end)`` of every run of consecutive alarmed samples (end: the last alarmed sample)."""
    on = alarm.to_numpy(dtype=np.float64) > 0.5
    t = alarm.index.to_numpy(dtype=np.float64)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
    return [(float(t[a]), float(t[b - 1])) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def find_recordings(data_dir: Path) -> list[Path]:
    """``data_dir`` itself if it is a recording, else its sub-folders that are (sorted)."""
    data_dir = Path(data_dir)
    if (data_dir / META).exists() or (data_dir / MANIFEST).exists():
        return [data_dir]
    found = sorted(p for p in data_dir.iterdir() if p.is_dir() and ((p / META).exists() or (p / MANIFEST).exists()))
    if not found:
        raise DataError(f"no live recording in {data_dir}", hint="record one with `vigil validate --record DIR`")
    return found


# --- replay ----------------------------------------------------------------------------------------


def refit_model(root: Path, rec: EntityRecording, overrides: Mapping[str, Any]) -> Any:
    """A fresh model fitted on the entity's recorded training span with the first served version's
    own parameters (its model card), ``overrides`` on top: the loop for tuning a rule on recordings."""
    from vigil.detectors.pipeline import AnomalyPipeline

    card = json.loads((root / rec.versions[0]["dir"] / "card.json").read_text())
    ts = unix_seconds(rec.inputs.index)
    lo, hi = rec.training
    return AnomalyPipeline(**{**card["params"], **dict(overrides)}).fit(rec.inputs[(ts >= lo) & (ts <= hi)])


class _StepClock:
    """The engine's clock during a replay: the time of the step being scored."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def replay(
    recording: Recording,
    *,
    refit: Mapping[str, Any] | None = None,
    fast_path: bool = True,
    alert_hold_s: float | None = None,
) -> dict[str, Any]:
    """Alarms of every entity replayed through the serving engine, scored like the campaign.

    With ``refit`` (parameter overrides, possibly empty), each entity's first version is replaced by
    :func:`refit_model`'s. Returns the campaign metrics plus ``alarms``: per entity the alarm state
    at every input step. ``alert_hold_s`` replays an engine that held alerts that long (default:
    the hold the recording says serving used, else the engine's own default).
    """
    hold = alert_hold_s if alert_hold_s is not None else float(recording.meta.get("alert_hold_s", 0.0))
    from vigil.validation.scoring import entity_side, score_campaign

    meta = recording.meta
    step_s = float(meta["step_s"])
    per_entity: dict[str, pd.Series] = {}
    for rec in recording.entities:
        ts = unix_seconds(rec.inputs.index)
        if refit is not None:
            first = rec.versions[0]
            model = refit_model(recording.path, rec, refit)
            models = [(f"refit-{first['version']}", float(first["served_from"]), model)]
        else:
            models = [(v["version"], float(v["served_from"]), None) for v in rec.versions]
        per_entity[rec.entity] = pd.Series(
            _replay_entity(recording.path, rec, ts, models, step_s, fast_path, hold), index=ts
        )
    t0, t1 = float(meta["scored_period"][0]), float(meta["scored_period"][1])

    def max_of(series: list[pd.Series]) -> pd.Series:
        return pd.concat(series, axis=1).fillna(False).max(axis=1).sort_index()

    combined = max_of(list(per_entity.values()))
    # Recordings since the overlapping faults name the service entities, which those faults are judged by.
    services = frozenset(meta.get("services", ()))
    sides: dict[str, list[pd.Series]] = {}
    for entity, series in per_entity.items():
        sides.setdefault(entity_side(entity, services), []).append(series)
    side_alarms = {side: (m.index.to_numpy(), m.to_numpy(dtype=np.float64)) for side, m in
                   ((side, max_of(series)) for side, series in sides.items())} if services else None  # fmt: skip
    result = score_campaign(
        recording.faults, t0=t0, t1=t1, alarm_ts=combined.index.to_numpy(),
        alarm_values=combined.to_numpy(dtype=np.float64), step_s=step_s, tail_s=float(meta["tail_s"]),
        side_alarms=side_alarms, services=services,
    )  # fmt: skip
    result["alarms"] = per_entity
    result["recording"] = str(recording.path)
    return result


def _replay_entity(
    root: Path,
    rec: EntityRecording,
    ts: np.ndarray,
    models: list[tuple[str, float, Any]],
    step_s: float,
    fast: bool,
    alert_hold_s: float,
) -> np.ndarray:
    """One entity's alarm (what ``vigil_anomaly`` exports) after each recorded step."""
    from vigil.detection.assembler import ReadyStep
    from vigil.detection.engine import DetectionEngine, LoadedModel
    from vigil.detection.fast import compile_model
    from vigil.registry.bundle import load_bundle

    clock = _StepClock()
    engine = DetectionEngine(step_s=step_s, clock=clock, alert_hold_s=alert_hold_s)
    pending = sorted(models, key=lambda m: m[1])
    values = rec.inputs.to_numpy(dtype=np.float64)
    columns = [str(c) for c in rec.inputs.columns]
    alarm = np.zeros(len(ts), dtype=bool)
    # Live, a dead target's series get stale markers and then nothing until it is back: the stale
    # step reaches the engine once the entity has been quiet for the assembler's grace, the steps
    # after it, every value missing, only in one burst at recovery. Replayed the same way, so the
    # silence alarm sees what serving saw.
    held: list[tuple[float, dict[str, float]]] = []
    in_outage, stale_due = False, math.inf
    for i, t in enumerate(ts):
        clock.t = float(t)
        while pending and pending[0][1] <= t:
            version, _served, model = pending.pop(0)
            if model is None:
                model = load_bundle(root / next(v["dir"] for v in rec.versions if v["version"] == version))
            scorer, info = compile_model(model) if fast else (model, {"fast": False})
            fingerprint = f"{rec.model}@{version}"
            engine.set_model(LoadedModel(version, fingerprint, model, scorer, float(t), bool(info.get("fast"))))
        if engine.loaded is None:
            continue
        row = dict(zip(columns, values[i].tolist(), strict=True))
        if np.isnan(values[i]).all():
            if not held and not in_outage:
                in_outage, stale_due = True, float(t) + engine.grace_s
            held.append((float(t), row))
        else:
            burst = [ReadyStep(rec.entity, ht, hrow, float(t)) for ht, hrow in held]
            engine.score_steps([*burst, ReadyStep(rec.entity, float(t), row, float(t))])
            held, in_outage = [], False
        if held and t >= stale_due:
            stale_t, stale_row = held.pop(0)
            engine.score_steps([ReadyStep(rec.entity, stale_t, stale_row, float(t))])
            stale_due = math.inf  # once per outage
        engine.check_silence(float(t))
        view = next((v for v in engine.views() if v.entity == rec.entity), None)
        alarm[i] = bool(view and view.alarm)
    return alarm


def combine(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pooled figures over several replays: event counts, false runs and quiet time add up."""
    events = sum(r["events"] for r in results)
    detected = sum(r["detected_events"] for r in results)
    false_runs = sum(r["false_alert_runs"] for r in results)
    quiet_h = sum(r["quiet_hours"] for r in results)
    onsets = [f["onset_detected"] for r in results for f in r["faults"]]
    detects = [f["detect_s"] for r in results for f in r["faults"] if f["detect_s"] is not None]
    true_runs = sum(r["alert_runs"] - r["false_alert_runs"] for r in results)
    precision = true_runs / (true_runs + false_runs) if true_runs + false_runs else 0.0
    recall = detected / events if events else 0.0
    quiet_on = sum(r["quiet_alarm_fraction"] * r["quiet_hours"] for r in results)
    return {
        "recordings": len(results),
        "events": events,
        "detected_events": detected,
        "event_precision": round(precision, 3),
        "event_recall": round(recall, 3),
        "event_f1": round(2 * precision * recall / (precision + recall), 3) if precision + recall else 0.0,
        "onset_recall": round(sum(onsets) / len(onsets), 3) if onsets else None,
        "false_alert_runs": false_runs,
        "quiet_hours": round(quiet_h, 4),
        "false_alert_runs_per_hour": round(false_runs / quiet_h, 2) if quiet_h else None,
        "quiet_alarm_fraction": round(quiet_on / quiet_h, 4) if quiet_h else None,
        "median_detect_s": round(float(np.median(detects)), 1) if detects else None,
    }
