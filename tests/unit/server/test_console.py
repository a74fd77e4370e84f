"""The console's shells and read endpoints over real HTTP, with a real model scoring real SMD rows and
no Prometheus reachable (the pages must say so and still show Vigil's own numbers). The pages in a
real browser, on the live stack, are in tests/integration/training/test_console_browser.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.unit.server.payloads import HEADERS, body
from vigil.config import Settings, load_settings

AUTH = {"Authorization": "Bearer test-token"}
HOSTILE = "<script>alert(1)</script>:9100"


@pytest.fixture
def settings(vigil_home: Path) -> Settings:
    """The package's settings, with Prometheus on a port where nothing listens."""
    return load_settings(
        home=vigil_home, api_token="test-token", serving={"model_poll_s": 0.2},
        prometheus_url=f"http://127.0.0.1:{free_port()}",
    )  # fmt: skip


def _scored(base_url: str, entity: str) -> dict:
    assert requests.post(f"{base_url}/api/v1/write", data=body(entity, range(0, 40)), headers=HEADERS, timeout=30).ok
    resp = requests.get(f"{base_url}/v1/entities/{requests.utils.quote(entity, safe='')}", timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_pages_are_shells_with_strict_headers_and_escaped_ids(base_url: str) -> None:
    entity = _scored(base_url, "db-1")["entity"]
    now = requests.get(f"{base_url}/ui/", timeout=10)
    assert now.status_code == 200 and 'data-page="now"' in now.text
    policy = now.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert now.headers["Cache-Control"] == "no-store"
    page = requests.get(f"{base_url}/ui/entities/{entity}", timeout=10)
    assert page.status_code == 200 and 'data-id="db-1"' in page.text
    for path in ("ui/static/console.js", "ui/static/console.css", "ui/static/vendor/uplot/uPlot.iife.min.js"):
        assert requests.get(f"{base_url}/{path}", timeout=10).status_code == 200, path

    # Unknown ids answer 404 with a page; the id, typed by anyone into a URL, comes back escaped.
    missing = requests.get(f"{base_url}/ui/entities/{requests.utils.quote(HOSTILE, safe='')}", timeout=10)
    assert missing.status_code == 404
    assert "<script>alert" not in missing.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in missing.text
    assert requests.get(f"{base_url}/ui/incidents/nope", timeout=10).status_code == 404
    assert requests.get(f"{base_url}/ui/no-such-page", timeout=10).status_code == 404


def test_read_endpoints_show_vigils_numbers_and_name_the_missing_prometheus(base_url: str) -> None:
    hostile = _scored(base_url, HOSTILE)
    plain = _scored(base_url, "db-2")
    overview = requests.get(f"{base_url}/v1/overview", timeout=30).json()
    rows = {e["entity"]: e for e in overview["entities"]}
    assert rows[HOSTILE]["score"] == hostile["score"] and rows["db-2"]["score"] == plain["score"]
    assert overview["prometheus_error"], "no Prometheus runs here: the overview must say so"
    alarms = [e["alarm"] for e in overview["entities"]]
    assert alarms == sorted(alarms, reverse=True), "alarmed entities first"

    path = requests.utils.quote(HOSTILE, safe="")
    hist = requests.get(f"{base_url}/v1/history/{path}?window=15m", timeout=30)
    assert hist.status_code == 200, hist.text
    data = hist.json()
    assert data["threshold"] == hostile["threshold"] and data["score_now"] == hostile["score"]
    assert [c["metric"] for c in data["contributions"]] == [c["metric"] for c in hostile["contributions"]]
    assert data["score"] is None and data["prometheus_error"]
    for bad in ("bogus", "30d", "5s"):
        resp = requests.get(f"{base_url}/v1/history/{path}?window={bad}", timeout=10)
        assert resp.status_code == 400 and "window" in resp.json()["error"], bad
    assert requests.get(f"{base_url}/v1/history/nobody", timeout=10).status_code == 404
    assert requests.get(f"{base_url}/v1/incidents/nope", timeout=10).status_code == 404
    assert requests.get(f"{base_url}/v1/chat/messages/nope", timeout=10).json() == {"messages": []}
    missing = requests.get(f"{base_url}/v1/validation/latest", timeout=10)
    assert missing.status_code == 404 and "vigil validate" in missing.text


def test_model_actions_need_the_admin_token_and_are_recorded(base_url: str, settings: Settings) -> None:
    refused = requests.post(f"{base_url}/v1/models/rollback", json={"model": "smd-a"}, timeout=10)
    assert refused.status_code == 401
    assert requests.post(f"{base_url}/v1/models/rollback", json={}, headers=AUTH, timeout=10).status_code == 400
    served = requests.get(f"{base_url}/v1/models", timeout=10).json()["serving"]["version"]
    promoted = requests.post(f"{base_url}/v1/models/promote", json={"version": served}, headers=AUTH, timeout=30)
    assert promoted.status_code == 200, promoted.text
    lines = (settings.home / "state" / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"action": "promote"' in lines[0] and f'"current": "{served}"' in lines[0]


def test_an_incident_of_a_real_alarm_has_its_page_and_details(base_url: str) -> None:
    import numpy as np

    from tests.unit.detection.realmodel import frame, trained

    batch = trained().score_frame(frame("test", 0, 2000))
    first_alarm = int(np.flatnonzero(batch["alarm"].to_numpy())[0])
    steps = range(first_alarm - 60, first_alarm + 1)
    assert requests.post(f"{base_url}/api/v1/write", data=body("db-5", steps), headers=HEADERS, timeout=30).ok
    (listed,) = requests.get(f"{base_url}/v1/incidents", timeout=5).json()["incidents"]
    detail = requests.get(f"{base_url}/v1/incidents/{listed['id']}", timeout=5).json()["incident"]
    (member,) = detail["entities"]
    entity = requests.get(f"{base_url}/v1/entities/db-5", timeout=5).json()
    assert member["entity"] == "db-5" and member["alarm"] and member["score"] == entity["score"]
    assert [t["metric"] for t in member["top"]] == [c["metric"] for c in entity["contributions"][:3]]
    page = requests.get(f"{base_url}/ui/incidents/{listed['id']}", timeout=5)
    assert page.status_code == 200 and f'data-id="{listed["id"]}"' in page.text
    overview = requests.get(f"{base_url}/v1/overview", timeout=30).json()
    assert [i["id"] for i in overview["incidents"]] == [listed["id"]]
    assert overview["entities"][0]["entity"] == "db-5" and overview["entities"][0]["incident"] == listed["id"]
