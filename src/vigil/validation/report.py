"""Campaign report: ``report.md`` + ``report.html`` with one PNG per fault, and the JSON for machines."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vigil.jsonsafe import json_safe

# Which collected series each fault type is expected to move (the plot shows these; all if none match).
RELEVANT: dict[str, tuple[str, ...]] = {
    "cpu_saturation": ("cpu_busy", "demo_p90_latency_s"),
    "memory_pressure": ("mem_available_bytes",),
    "disk_io_saturation": ("disk_write_bytes_per_s", "disk_io_busy"),
    "disk_full": ("demo_fs_free_bytes", "demo_error_rate"),
    "network_loss": ("demo_p90_latency_s", "demo_error_rate"),
    "network_bandwidth": ("demo_p90_latency_s", "demo_error_rate"),
    "network_delay": ("demo_p90_latency_s", "demo_error_rate"),
    "db_outage": ("demo_error_rate", "demo_request_rate"),
    "latency_regression": ("demo_p90_latency_s", "demo_request_rate"),
    "process_crash": ("demo_up", "demo_request_rate"),
}

REQUIRED_KEYS = (
    "event_precision",
    "event_recall",
    "event_f1",
    "median_detect_s",
    "p90_detect_s",
    "false_alert_runs_per_hour",
    "faults",
)


@dataclass
class Series:
    """Time series for the plots: ``name -> (unix seconds, values)``."""

    metrics: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    score: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: (np.array([]), np.array([])))
    threshold: float | None = None


def _clip(ts: np.ndarray, vs: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    ts, vs = np.asarray(ts, dtype=np.float64), np.asarray(vs, dtype=np.float64)
    keep = (ts >= lo) & (ts <= hi)
    return ts[keep], vs[keep]


def plot_fault(fault: Mapping[str, Any], series: Series, path: Path, *, tail_s: float = 30.0) -> Path:
    """One PNG: the fault's relevant metrics and the ensemble score, window shaded, alarm/alert marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start, end = float(fault["start"]), float(fault["end"])
    lo, hi = start - 90, end + tail_s + 60
    names = [n for n in RELEVANT.get(str(fault["type"]), ()) if n in series.metrics] or sorted(series.metrics)[:3]
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(8, 1.8 * (len(names) + 1)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:-1, 0], names, strict=False):
        ts, vs = _clip(*series.metrics[name], lo, hi)
        ax.plot(ts - start, vs, lw=1.2)
        ax.set_ylabel(name, fontsize=7)
    ax = axes[-1, 0]
    ts, vs = _clip(*series.score, lo, hi)
    ax.plot(ts - start, vs, lw=1.2, color="black", label="ensemble score")
    if series.threshold is not None and math.isfinite(series.threshold):
        ax.axhline(series.threshold, color="grey", ls="--", lw=0.8, label="threshold")
    ax.set_ylabel("score", fontsize=7)
    ax.set_xlabel(f"seconds from fault start ({datetime.fromtimestamp(start, UTC):%H:%M:%S} UTC)")
    for a in axes[:, 0]:
        a.axvspan(0, end - start, color="tab:red", alpha=0.15)
        if fault.get("detect_s") is not None:
            a.axvline(float(fault["detect_s"]), color="tab:orange", lw=1.2)
        if fault.get("alert_s") is not None:
            a.axvline(float(fault["alert_s"]), color="tab:purple", lw=1.2, ls=":")
        a.tick_params(labelsize=7)
    verdict = f"detected after {fault['detect_s']:.0f} s" if fault.get("detected") else "missed"
    if fault.get("alert_s") is not None:
        verdict += f"; alert after {fault['alert_s']:.0f} s"
    axes[0, 0].set_title(
        f"{fault['type']}: {verdict}  (shaded: fault; orange: first anomaly; purple: Alertmanager alert)",
        fontsize=8,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"
    return str(x)


def _effect_summary(effect: Mapping[str, Any]) -> str:
    parts = []
    for k, v in effect.items():
        if isinstance(v, dict):
            v = {kk: vv for kk, vv in v.items() if kk in ("error_rate", "p50_ms", "p90_ms")}
            parts.append(f"{k}: " + ", ".join(f"{kk}={_fmt(vv)}" for kk, vv in v.items()))
        elif not isinstance(v, list):
            parts.append(f"{k}={_fmt(v)}")
    return "; ".join(parts)


def _tables(result: Mapping[str, Any]) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    type_head = ["fault type", "instances", "detected", "precision", "recall", "F1", "median detect s",
                 "p90 detect s", "alerted", "median alert s"]  # fmt: skip
    type_rows = [
        [k, _fmt(v["instances"]), _fmt(v["detected"]), _fmt(v["event_precision"]), _fmt(v["event_recall"]),
         _fmt(v["event_f1"]), _fmt(v["median_detect_s"]), _fmt(v["p90_detect_s"]), _fmt(v["alerted"]),
         _fmt(v["median_alert_s"])]
        for k, v in result.get("by_type", {}).items()
    ]  # fmt: skip
    fault_head = ["#", "type", "start (UTC)", "duration s", "took effect", "steady wait s", "detected",
                  "alarm already on", "detect s", "alert s", "chat s", "chat named (expected)", "evidence"]  # fmt: skip
    fault_rows = [
        [str(i + 1), f["type"] + (f" (with {f['overlaps']})" if f.get("overlaps") else ""),
         datetime.fromtimestamp(f["start"], UTC).strftime("%H:%M:%S"),
         f"{f['end'] - f['start']:.0f}", _fmt(f.get("took_effect")), _steady_summary(f.get("steady")),
         _fmt(f.get("detected")),
         _fmt(f.get("alarm_on_before_start")), _fmt(f.get("detect_s")), _fmt(f.get("alert_s")),
         _fmt(f.get("chat_s")), _chat_summary(f), _effect_summary(f.get("effect", {}))]
        for i, f in enumerate(result["faults"])
    ]  # fmt: skip
    return type_head, type_rows, fault_head, fault_rows


def _steady_summary(steady: Mapping[str, Any] | None) -> str:
    if not steady:
        return "-"
    if steady.get("steady"):
        return f"{steady['waited_s']:.0f}"
    return f"{steady['waited_s']:.0f} (still on: {', '.join(steady.get('alarmed') or ['unknown'])})"


def _chat_summary(fault: Mapping[str, Any]) -> str:
    named = sorted({c["signature"] for c in fault.get("chat", []) if c.get("signature")})
    return f"{', '.join(named) or '-'} ({fault.get('signature_expected', '?')})"


def _summary_pairs(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    keys = ["event_precision", "event_recall", "event_f1", "median_detect_s", "p90_detect_s", "median_alert_s",
            "p90_alert_s", "median_chat_s", "p90_chat_s", "signature_accuracy", "place_accuracy",
            "one_message_fraction", "false_alert_runs", "quiet_hours", "false_alert_runs_per_hour", "onset_recall",
            "quiet_alarm_fraction", "point_precision", "point_recall", "alert_runs"]  # fmt: skip
    pairs = [(k, _fmt(result.get(k))) for k in keys]
    overlaps = result.get("overlaps") or {}
    return pairs + [(f"overlapping faults: {k}", _fmt(v)) for k, v in overlaps.items()]


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(out)


def write_report(result: Mapping[str, Any], series: Series | None, out_dir: Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``results.json`` and one PNG per fault into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tail = float(result.get("tail_s", 30.0))
    images: list[str] = []
    for i, fault in enumerate(result["faults"]):
        name = f"fault-{i + 1:02d}-{fault['type']}.png"
        if series is not None:
            plot_fault(fault, series, out_dir / name, tail_s=tail)
            images.append(name)
    meta = result.get("meta", {})
    type_head, type_rows, fault_head, fault_rows = _tables(result)
    title = f"Vigil validation — {meta.get('purpose', 'test')} run, profile {meta.get('profile', '?')}"
    intro = (
        f"Seed {meta.get('seed')}, {len(result['faults'])} faults, campaign "
        f"{meta.get('started', '?')} to {meta.get('finished', '?')}, model {meta.get('model', '?')}, "
        f"{meta.get('entities', '?')} scored entit{'y' if meta.get('entities') == 1 else 'ies'}, alarms from "
        f"{meta.get('detection_source', '?')}. "
        f"Scored on a {result.get('step_s', 1)} s grid; an anomaly up to {tail:.0f} s (or 10% of the fault's "
        "length) after a fault ends still counts for it. Metric code: vigil.evaluation.metrics.event_metrics."
    )
    md = [f"# {title}", "", intro, "", "## Summary", "", _md_table(["metric", "value"], _summary_pairs(result)), ""]
    md += ["## Per fault type", "", _md_table(type_head, type_rows), "", "## Fault instances", ""]
    md += [_md_table(fault_head, fault_rows), ""]
    for notes in meta.get("notes", []):
        md.append(f"- {notes}")
    md.append("")
    for i, (fault, img) in enumerate(zip(result["faults"], images, strict=False)):
        md += [
            f"### {i + 1}. {fault['type']}",
            "",
            f"`{fault.get('command', '')}`",
            "",
            f"![{fault['type']}]({img})",
            "",
        ]
    (out_dir / "report.md").write_text("\n".join(md))

    def h_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
        th = "".join(f"<th>{html.escape(c)}</th>" for c in head)
        trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}"
        "code{font-size:12px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>",
        "<h2>Summary</h2>", h_table(["metric", "value"], _summary_pairs(result)),
        "<h2>Per fault type</h2>", h_table(type_head, type_rows),
        "<h2>Fault instances</h2>", h_table(fault_head, fault_rows),
        "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in meta.get("notes", [])) + "</ul>",
    ]  # fmt: skip
    for i, (fault, img) in enumerate(zip(result["faults"], images, strict=False)):
        parts.append(
            f"<h3>{i + 1}. {html.escape(fault['type'])}</h3><p><code>{html.escape(fault.get('command', ''))}</code>"
            f"</p><img src='{html.escape(img)}' alt='{html.escape(fault['type'])}'>"
        )
    parts.append("</body></html>")
    (out_dir / "report.html").write_text("".join(parts))
    write_json(result, out_dir / "results.json")
    return {"md": out_dir / "report.md", "html": out_dir / "report.html", "json": out_dir / "results.json"}


def write_json(result: Mapping[str, Any], path: Path) -> Path:
    missing = [k for k in REQUIRED_KEYS if k not in result]
    if missing:
        raise ValueError(f"campaign result lacks {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(dict(result)), indent=2, sort_keys=False))
    return path
