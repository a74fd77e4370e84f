"""The console's Now page in Debian's headless Chromium: milliseconds from navigation start until the
page is fully drawn (every row and sparkline; the console script's ``vigil-rendered`` performance
mark), with 1,000 entities and, as the same run's baseline, with 10. Median and worst of 7 loads.

A real model (SMD machine-1-2) scores real SMD rows sent by remote_write for every entity; a real
Prometheus scrapes the service every second, so each sparkline has points. Run:
``.venv/bin/python benchmarks/console.py`` (about 4 minutes); the figures go to docs/ui.md.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402
import yaml  # noqa: E402
from tests.integration.browser import chromium, open_page  # noqa: E402
from tests.integration.server.realprocs import binary, free_port, process, wait_until  # noqa: E402
from tests.unit.detection.realmodel import save_model  # noqa: E402
from tests.unit.server.livehttp import serve  # noqa: E402
from tests.unit.server.payloads import HEADERS, step_series  # noqa: E402

from vigil.config import load_settings  # noqa: E402
from vigil.detection.service import DetectionService  # noqa: E402
from vigil.ingest.remote_write import encode_write_request  # noqa: E402
from vigil.server import create_app  # noqa: E402

LOADS = 7
SCRAPE_S = 60  # of score history before measuring: two sparkline points per minute


def feed(url: str, entities: list[str]) -> None:
    for i in range(0, len(entities), 25):
        series = [s for e in entities[i : i + 25] for s in step_series(e, range(0, 40))]
        resp = requests.post(f"{url}/api/v1/write", data=encode_write_request(series), headers=HEADERS, timeout=120)
        resp.raise_for_status()


def measure(driver: object, url: str) -> list[float]:
    out = []
    for _ in range(LOADS):
        open_page(driver, f"{url}/ui/", timeout_s=60)
        out.append(driver.execute_script("return performance.getEntriesByName('vigil-rendered')[0].startTime"))  # type: ignore[attr-defined]
    return out


def main() -> None:
    with TemporaryDirectory() as tmp:
        work = Path(tmp)
        prom_port = free_port()
        settings = load_settings(home=work / "home", api_token="bench", prometheus_url=f"http://127.0.0.1:{prom_port}")
        save_model(settings.models_dir, "smd-a")
        service = DetectionService(settings, send_alerts=False)
        results: dict[str, dict[str, float]] = {}
        with serve(create_app(settings, service=service)) as url:
            config = {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [{"job_name": "vigil", "static_configs": [{"targets": [url.split("//")[1]]}]}],
            }
            (work / "prometheus.yml").write_text(yaml.safe_dump(config))
            argv = [binary("prometheus") or "prometheus", f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'prom'}", f"--web.listen-address=127.0.0.1:{prom_port}"]  # fmt: skip
            with process(argv, work / "prometheus.log"), chromium(work) as driver:
                prom = f"http://127.0.0.1:{prom_port}"
                wait_until(lambda: requests.get(f"{prom}/-/ready", timeout=1).ok, 30, "Prometheus ready")
                done: list[str] = []
                for n in (10, 1000):
                    new = [f"host-{i:04d}:9100" for i in range(len(done), n)]
                    t = time.monotonic()
                    feed(url, new)
                    done += new
                    print(f"{n} entities fed in {time.monotonic() - t:.1f} s; {SCRAPE_S} s of scrapes", flush=True)
                    time.sleep(SCRAPE_S)
                    shown = requests.get(f"{url}/v1/overview", timeout=60).json()
                    assert len(shown["entities"]) == n and not shown["prometheus_error"], shown["prometheus_error"]
                    points = sum(len(e["spark"]) for e in shown["entities"])
                    ms = measure(driver, url)
                    results[str(n)] = {"median_ms": round(statistics.median(ms), 1), "max_ms": round(max(ms), 1),
                                       "sparkline_points": points}  # fmt: skip
                    print(f"{n} entities: {results[str(n)]}", flush=True)
        service.close()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
