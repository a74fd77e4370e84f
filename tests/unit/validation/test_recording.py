"""Recorded live runs: refused when incomplete or altered, and replayed through the serving engine
to the alarms serving raised live (committed recordings of real quick-profile runs, tests/data/live)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from vigil.errors import DataError
from vigil.validation.recording import (
    MANIFEST,
    alarm_runs,
    combine,
    find_recordings,
    open_recording,
    replay,
    write_recording,
)

LIVE = Path(__file__).resolve().parents[2] / "data" / "live"
RECORDINGS = sorted(p for p in LIVE.iterdir() if p.is_dir()) if LIVE.is_dir() else []


@pytest.fixture(scope="module")
def recording_dir() -> Path:
    """The quick run the replay test below describes (its serving process's alert hold)."""
    path = LIVE / "quick-seed18-2026-12-03"
    assert path in RECORDINGS, f"no committed recording {path}"
    return path


def _copy(src: Path, tmp_path: Path) -> Path:
    dest = tmp_path / src.name
    shutil.copytree(src, dest)
    return dest


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[:-10])


def test_a_committed_recording_opens_and_describes_itself(recording_dir: Path) -> None:
    rec = open_recording(recording_dir)
    assert rec.meta["format"] == "vigil.live-recording/1" and rec.meta["profile"] in ("quick", "full")
    assert {e.entity for e in rec.entities} == set(rec.live_alarms.columns)
    for e in rec.entities:
        lo, hi = e.training
        assert e.inputs.index[0].timestamp() <= lo < hi < rec.meta["scored_period"][0]
        assert e.versions and all(v["served_from"] > hi for v in e.versions)
    assert find_recordings(LIVE) == RECORDINGS


def test_replay_raises_the_alarms_serving_raised_live(recording_dir: Path) -> None:
    """Same alarm runs as live, each within a few seconds: live values are scraped from the serving
    process, which scores a step a moment after its timestamp (remote_write batching, the step's grace).

    This recording's serving process still held every alert 5 s past the model's own alarm hold (the
    engine has not since), so it is replayed with that hold. A crashed service's alarm comes from 10 s
    of silence: the replay feeds its missing steps as serving gets them (not at all until the service
    is back), but a 10 s crash against a 10 s silence is decided by fractions of a second of scrape
    timing that a step-resolution recording does not hold, so runs touching a crash are left out.
    """
    rec = open_recording(recording_dir)
    result = replay(rec, alert_hold_s=5.0)
    t0, t1 = rec.meta["scored_period"]
    crashes = [(f["start"], f["end"]) for f in rec.faults if f["type"].startswith("process_crash")]

    def touches_crash(run: tuple[float, float]) -> bool:
        return any(run[0] <= end + 30 and run[1] >= start - 5 for start, end in crashes)

    for entity, replayed in result["alarms"].items():
        live_all = alarm_runs(rec.live_alarms[entity].dropna())
        ours_all = [(max(a, t0), min(b, t1)) for a, b in alarm_runs(replayed.astype(float)) if b >= t0 and a <= t1]
        live_runs = [r for r in live_all if not touches_crash(r)]
        ours = [r for r in ours_all if not touches_crash(r)]
        assert len(ours) == len(live_runs), (entity, ours, live_runs)
        for (a, b), (la, lb) in zip(ours, live_runs, strict=True):
            assert abs(a - la) <= 4 and abs(b - lb) <= 4, (entity, (a, b), (la, lb))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / MANIFEST).unlink(), "manifest.json: missing"),
        (lambda d: next((d / "inputs").glob("*.parquet")).unlink(), "listed in the manifest but missing"),
        (
            lambda d: (d / "quiet.parquet").write_bytes((d / "quiet.parquet").read_bytes()[:-10]),
            "quiet.parquet: sha256",
        ),
    ],
)
def test_incomplete_or_altered_recordings_are_refused_naming_the_file(
    recording_dir: Path,
    tmp_path: Path,
    damage,
    message: str,  # noqa: ANN001
) -> None:
    dest = _copy(recording_dir, tmp_path)
    damage(dest)
    with pytest.raises(DataError, match=message):
        open_recording(dest)


def test_inputs_that_disagree_with_the_metadata_are_refused(recording_dir: Path, tmp_path: Path) -> None:
    rec = open_recording(recording_dir)
    e = rec.entities[0]
    short = {x.entity: (x.inputs.iloc[:-5] if x is e else x.inputs) for x in rec.entities}
    models = {
        x.entity: [(v["version"], v["served_from"], recording_dir / v["dir"]) for v in x.versions] for x in rec.entities
    }
    dest = write_recording(
        tmp_path / "rec", meta={k: v for k, v in rec.meta.items() if k not in ("entities", "format", "grid_rows")},
        inputs=short, models=models, training={x.entity: x.training for x in rec.entities},
        grid=pd.read_parquet(recording_dir / "quiet.parquet"), live_alarms=rec.live_alarms,
    )  # fmt: skip
    meta = json.loads((dest / "recording.json").read_text())
    meta["entities"][e.entity]["rows"] += 5  # recording.json says more rows than the file holds
    (dest / "recording.json").write_text(json.dumps(meta))
    manifest = json.loads((dest / MANIFEST).read_text())
    from vigil.registry.bundle import sha256_file

    manifest["files"]["recording.json"] = sha256_file(dest / "recording.json")
    (dest / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=f"inputs/{e.model}.parquet: .* rows"):
        open_recording(dest)


def test_an_interrupted_write_leaves_nothing_that_looks_complete(recording_dir: Path, tmp_path: Path) -> None:
    rec = open_recording(recording_dir)
    with pytest.raises(OSError):
        write_recording(
            tmp_path / "rec", meta={"profile": "quick"}, inputs={x.entity: x.inputs for x in rec.entities},
            models={rec.entities[0].entity: [("1", 0.0, tmp_path / "no-such-bundle")]},
            training={x.entity: x.training for x in rec.entities}, grid=pd.DataFrame({"t": [0.0]}),
            live_alarms=rec.live_alarms,
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # no half-written folder, not even a temporary one
    with pytest.raises(DataError, match="already exists"):
        write_recording(
            tmp_path, meta={}, inputs={}, models={}, training={}, grid=pd.DataFrame(), live_alarms=pd.DataFrame()
        )


def test_combined_figures_pool_events_and_quiet_time(recording_dir: Path) -> None:
    r = replay(open_recording(recording_dir))
    both = combine([r, r])
    assert both["events"] == 2 * r["events"] and both["false_alert_runs"] == 2 * r["false_alert_runs"]
    assert both["quiet_hours"] == pytest.approx(2 * r["quiet_hours"], rel=1e-6)
    assert both["quiet_alarm_fraction"] == pytest.approx(r["quiet_alarm_fraction"], abs=1e-4)


@pytest.mark.slow
def test_memory_past_its_training_range_alarms_where_the_ensemble_did_not() -> None:
    """The full run of 2026-12-03 (seed 5113): its host model, trained on a baseline with CPU bursts,
    scored both memory faults and the weak one, and both CPU faults, under its threshold. Refitted on
    the same span with the catalogue's rules, the range rule catches each memory fault and the
    sustained rule each strong CPU fault (45 s at 100 % against bursts to 80 %), and quiet time gains
    no alarm (measured: 0 false alert runs and the alarm on for 0.83 % of quiet time, with or without
    them)."""
    from vigil.ingest.catalog import SIGNALS, signal_minimums

    rec = open_recording(LIVE / "full-seed5113-2026-12-03")
    rules = signal_minimums([s.name for kind in SIGNALS.values() for s in kind])
    result = replay(rec, refit={"signal_minimums": rules})
    memory = [f for f in result["faults"] if f["type"].startswith("memory_pressure")]
    assert len(memory) == 3 and all(f["detected"] for f in memory), memory
    cpu = [f for f in result["faults"] if f["type"] == "cpu_saturation"]
    assert len(cpu) == 2 and all(f["detected"] for f in cpu), cpu
    assert result["false_alert_runs"] == 0 and result["quiet_alarm_fraction"] <= 0.01, result


@pytest.mark.slow
def test_a_noisy_neighbour_and_single_slow_requests_page_no_one() -> None:
    """The full run of 2026-12-06 (seed 40961) paged four times in its quiet soak: the hypervisor
    stole a third of the CPU for a few seconds (the host's alarm, on ``cpu_steal``), and at ten
    requests a second single slow requests made the service's p99 0.09 s against a usual 0.01 s for
    two steps (three of the service's). Refitted with the catalogue's rules (steal judged over 30 s,
    latency and process counts over 5 s, CPU held past its range for 15 steps), one false run is
    left (a burst of running processes beside the steal) and every fault but the one-kill crash is
    still caught, both CPU faults included."""
    from vigil.detectors.pipeline import AnomalyPipeline
    from vigil.ingest.catalog import SIGNALS, signal_minimums
    from vigil.training.data import LIVE_ALARM_HOLD_S

    rec = open_recording(LIVE / "full-seed40961-2026-12-06")
    for entity in rec.entities:
        if "cpu_steal" in entity.inputs.columns:
            # Recorded while cpu_busy still counted stolen time; both are shares of the same CPU time.
            busy = entity.inputs["cpu_busy"] - entity.inputs["cpu_steal"].fillna(0.0)
            entity.inputs["cpu_busy"] = busy.clip(lower=0.0)
    rules = signal_minimums([s.name for kind in SIGNALS.values() for s in kind])
    now = {"signal_minimums": rules, "sustained_window": AnomalyPipeline().sustained_window,
           "alarm_hold": round(LIVE_ALARM_HOLD_S / float(rec.meta["step_s"]))}  # fmt: skip
    result = replay(rec, refit=now)
    assert result["false_alert_runs"] <= 1 and result["quiet_alarm_fraction"] <= 0.02, result
    missed = [f["type"] for f in result["faults"] if not f["detected"]]
    assert missed == ["process_crash_weak"], missed


def test_a_recorded_quick_runs_alarms_group_into_one_incident_per_fault() -> None:
    """The live alarms of the 2026-12-07 quick run, grouped as serving groups them: the host and the
    demo service on it are related, so a fault that alarmed both is one incident."""
    from vigil.config import Settings
    from vigil.detection.incidents import Topology
    from vigil.validation.scoring import score_incidents

    rec = open_recording(LIVE / "quick-seed18-2026-12-07")
    alarms = {str(c): rec.live_alarms[c] for c in rec.live_alarms.columns}
    scored = score_incidents(
        rec.faults,
        alarms,
        Topology.from_settings(Settings()),
        tail_s=float(rec.meta["tail_s"]),
        join_s=15,
        resolve_s=20,
    )
    counts = {f["type"]: f["incidents"] for f in scored["per_fault"]}
    print(scored)
    assert scored["false_incidents"] == 0 and scored["incidents"] == sum(counts.values())
    assert max(counts.values()) == 1  # never two for one fault
    both = [f for f in scored["per_fault"] if f["entities"] and len(f["entities"][0]) == 2]
    assert both, "no fault alarmed the host and the service together"


@pytest.mark.slow
def test_a_faults_surprise_leaving_the_windows_is_not_carried_into_a_demand_trough() -> None:
    """The full run of 2026-12-07 (seed 3141592) paged on the service 33 s after a DB outage and 30 s
    after a weak network delay: as the fault's last steps left the 30-step windows the model was still
    surprised about latency and errors, the 5-step smoothing carried that surprise on, and the
    replayed demand's night trough took the request rate past its practical minimum just then, which
    opened the gate for it. With the smoothing gated (it carries a step's surprise only from steps at
    which a signal had moved, or to a step at which the signal that surprise was about has moved),
    both are gone; the host's real I/O stall after the weak disk fault still pages, and every fault
    is caught as before (measured: false runs 2 -> 1, alarm on in quiet time 2.3 % -> 1.1 %, onset
    recall 0.964 both)."""
    from vigil.ingest.catalog import SIGNALS, signal_minimums

    rec = open_recording(LIVE / "full-seed3141592-2026-12-07")
    rules = signal_minimums([s.name for kind in SIGNALS.values() for s in kind])
    carried, gated = (replay(rec, refit={"signal_minimums": rules, "gated_smoothing": g}) for g in (False, True))
    assert (carried["false_alert_runs"], gated["false_alert_runs"]) == (2, 1)
    assert gated["quiet_alarm_fraction"] < 0.6 * carried["quiet_alarm_fraction"]
    assert [f["detected"] for f in gated["faults"]] == [f["detected"] for f in carried["faults"]]
    assert gated["onset_recall"] == carried["onset_recall"] and gated["event_f1"] > carried["event_f1"]


def test_gated_smoothing_streams_as_it_scores_in_batch() -> None:
    """The service's model of that run, over the two minutes around the end of the DB outage whose
    surprise was carried into the trough: the gate drops those alarm steps, and the serving stream
    drops exactly the same ones."""
    import copy

    from vigil.ingest.catalog import SIGNALS, signal_minimums
    from vigil.timeindex import unix_seconds
    from vigil.validation.recording import refit_model

    rec = open_recording(LIVE / "full-seed3141592-2026-12-07")
    demo = next(e for e in rec.entities if e.entity == "demo")
    rules = signal_minimums([s.name for kind in SIGNALS.values() for s in kind])
    model = refit_model(rec.path, demo, {"signal_minimums": rules})
    end = [f["end"] for f in rec.faults if f["type"] == "db_outage"][1]
    ts = unix_seconds(demo.inputs.index)
    part = demo.inputs[(ts >= end - 100) & (ts < end + 60)]
    gated = model.score_frame(part)
    plain = copy.copy(model)
    plain.gated_smoothing = False
    assert model.gates_smoothing and (plain.score_frame(part)["alarm"] & ~gated["alarm"]).sum() >= 10
    stream = model.new_stream()
    steps = [stream.update(t.timestamp(), row.to_dict()) for t, row in part.iterrows()]
    assert [s.above_threshold for s in steps] == gated["above_threshold"].tolist()
    assert [s.alarm for s in steps] == gated["alarm"].tolist()


def test_an_unlabelled_stall_in_the_baseline_is_screened_out_of_training() -> None:
    """Seed 8675309's service baseline held a real 6-second stall of the demo (18:29:33-48 UTC:
    44 % errors, p99 9.5 s). Learnt as normal it hid the run's first fault, a 700 ms network
    delay; screened out, that fault alarms and the stall's own steps are what was left out."""
    from vigil.timeindex import unix_seconds
    from vigil.validation.recording import refit_model

    recording = open_recording(LIVE / "full-seed8675309-2026-12-07")
    demo = next(r for r in recording.entities if r.entity == "demo")
    delay = recording.meta["faults"][0]
    assert delay["type"] == "network_delay"
    ts = unix_seconds(demo.inputs.index)
    lo, hi = demo.training
    baseline = demo.inputs[(ts >= lo) & (ts <= hi)]
    stall = (baseline.index >= "2026-12-07 18:29:33+00:00") & (baseline.index <= "2026-12-07 18:29:48+00:00")
    # Scored from the baseline's start, so the fault's steps have their window features' history.
    through_fault = demo.inputs[(ts >= lo) & (ts < delay["end"])]
    in_fault = unix_seconds(through_fault.index) >= delay["start"]

    learnt = refit_model(recording.path, demo, {"screen_outliers": False})
    screened = refit_model(recording.path, demo, {"screen_outliers": True})

    assert learnt.screened_rows_ == 0
    assert learnt.score_frame(baseline)["alarm"].to_numpy()[stall].any()  # it finds it in its own data
    assert not learnt.score_frame(through_fault)["alarm"].to_numpy()[in_fault].any()
    assert stall.sum() <= screened.screened_rows_ <= stall.sum() + 2 * screened.long_window + 10
    assert screened.model_card()["screened_rows"] == screened.screened_rows_
    assert screened.score_frame(through_fault)["alarm"].to_numpy()[in_fault].any()


def test_a_clean_baseline_is_fitted_once() -> None:
    """Seed 3141592's baseline had nothing the model finds anomalous: screening changes nothing."""
    from vigil.validation.recording import refit_model

    recording = open_recording(LIVE / "full-seed3141592-2026-12-07")
    for rec in recording.entities:
        assert refit_model(recording.path, rec, {"screen_outliers": True}).screened_rows_ == 0
