"""Render Prometheus and Alertmanager config for a systemd host from the local stack's templates.

The templates in deploy/prometheus and deploy/alertmanager are shared with `vigil up`; only the
context differs: the Debian services on their standard ports, 15 s scrapes, production
Alertmanager timings. Settings (ports, bind host, scrape interval) come from VIGIL_* variables,
i.e. /etc/vigil/vigil.env under systemd, so the units and the config cannot disagree.

    VIGIL_HOME=/tmp/x python deploy/systemd/render-config.py --out /tmp/x/rendered [--no-check]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from vigil.config import load_settings
from vigil.stack.render import duration, render_template, rule_sources
from vigil.tokens import webhook_token_file


def contexts(settings, rules_dir: Path) -> tuple[dict, dict]:
    host, p = settings.bind_host, settings.ports
    jobs = [
        ("prometheus", p.prometheus),
        ("node", p.node_exporter),
        ("alertmanager", p.alertmanager),
        ("vigil", p.vigil),
        ("collector", p.collector),
    ]
    prometheus = {
        "scrape_interval": duration(settings.scrape_interval_s),
        "scrape_timeout": duration(min(settings.scrape_interval_s, 10.0)),
        "evaluation_interval": duration(settings.evaluation_interval_s),
        "external_labels": {"vigil_stack": "systemd"},
        "rule_files": [str(rules_dir / src.name) for src in sorted(rules_dir.glob("*.yml"))],
        "alertmanagers": [f"{host}:{p.alertmanager}"],
        "scrape_jobs": [{"job": job, "metrics_path": "/metrics", "targets": [f"{host}:{port}"]} for job, port in jobs],
        "remote_write": [
            {
                "url": f"{settings.url('vigil')}/api/v1/write",
                # Prometheus' default 5 s would add that much to every detection.
                "batch_send_deadline": "1s",
                "max_samples_per_send": 2000,
                "capacity": 10000,
                "max_shards": 4,
            }
        ],
    }
    alertmanager = {
        "webhook_url": f"{settings.url('vigil')}/v1/alertmanager",
        # 0640 in Vigil's group; the Alertmanager drop-in adds that group to its service.
        "webhook_token_file": str(webhook_token_file(settings)),
        # Production timings: batch a burst into one notification, re-notify every 4 h.
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "4h",
    }
    return prometheus, alertmanager


def write_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, prefix=f".{path.name}.") as fh:
        fh.write(text)
    os.chmod(fh.name, 0o644)
    os.replace(fh.name, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for prometheus.yml, alertmanager.yml, rules/")
    ap.add_argument("--no-check", action="store_true", help="skip `promtool check config`")
    args = ap.parse_args(argv)
    settings = load_settings()
    out: Path = args.out
    rules = out / "rules"
    rules.mkdir(parents=True, exist_ok=True)
    sources = rule_sources(settings.deploy_dir / "prometheus" / "rules")
    wanted = {src.name for src in sources}
    for stale in rules.glob("*.yml"):
        if stale.name not in wanted:  # a rule file deleted from deploy/ must not keep firing
            stale.unlink()
    for src in sources:
        write_atomic(rules / src.name, src.read_text())
    prom_ctx, am_ctx = contexts(settings, rules)
    write_atomic(
        out / "prometheus.yml", render_template(settings.deploy_dir / "prometheus" / "prometheus.yml.j2", prom_ctx)
    )
    write_atomic(
        out / "alertmanager.yml", render_template(settings.deploy_dir / "alertmanager" / "alertmanager.yml.j2", am_ctx)
    )
    if not args.no_check:
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        done = subprocess.run(
            [promtool, "check", "config", str(out / "prometheus.yml")], capture_output=True, text=True
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            return 1
    print(f"render-config: wrote {out}/prometheus.yml, alertmanager.yml and {len(wanted)} rule files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
