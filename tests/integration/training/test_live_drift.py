"""A permanent change of the watched service's load level drifts its model and yields a challenger,
on a live local stack of its own (tests/integration/training/archived.py); then the operator's
console in a real browser on the same stack, with the models that test left.

A second load generator adds 12 rps for good. After 3 minutes `vigil drift --json` (the champion's
reference vs the archive) must report input drift for the demo service, and none before the change;
a :class:`DriftTrigger` turns that into one retrain request and the :class:`Retrainer` registers a
challenger trained on the new regime. The stack's own trainer component (`vigil retrain --follow`)
checks the same drift every 20 s and exports it as vigil_drift_*; the test sees Prometheus scrape it
and the VigilInputDrift rule go pending (it fires after its 5-minute `for:`, which the promtool rule
test covers).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.stack.stackcli import StackCLI
from tests.integration.training.archived import BASELINE_S, ENTITY, archived_stack, prom_value, train_champions
from tests.unit.registry.support import FAST_PARAMS
from vigil.procfs import stat_fields

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SHIFTED_S = 180
# A real campaign's report (results.json and its plots), for the console's validation page.
REPORT = Path(__file__).parents[2] / "data" / "reports" / "full-seed8675309"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackCLI]:
    yield from archived_stack(tmp_path_factory.mktemp("live-drift") / "vigil-home")


def _drift(stack: StackCLI, since_s: int) -> dict:
    out = stack.run("drift", "-e", ENTITY, "--since", f"{since_s}s", "--json", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)[ENTITY]


def test_load_level_change_drifts_and_produces_a_challenger(stack: StackCLI) -> None:
    from vigil.config import load_settings
    from vigil.drift import DriftMonitor, DriftReference
    from vigil.registry import ModelRegistry
    from vigil.training import DriftTrigger, Retrainer, TrainConfig
    from vigil.training.data import read_archive_window

    settings = load_settings()
    champion = train_champions(stack, ENTITY)[ENTITY]
    window = json.loads(stack.run("models", "show", ENTITY, "--json").stdout)

    before = _drift(stack, 120)
    # Inputs only: a champion fitted on 5 minutes alarms often on the next minutes (its alert-rate
    # and score reasons may fire); what the load change must move is the service's signals.
    moved = {f: (round(v["psi"], 3), round(v["ks"], 3)) for f, v in before["features"].items() if v["drifted"]}
    assert before["version"] == champion and "features" not in before["reasons"], (
        f"drifted before the load change ({before['samples']} samples, fraction {before['drifted_fraction']:.2f}): "
        f"{moved}"
    )

    extra = subprocess.Popen(
        [sys.executable, "-m", "vigil.demo.loadgen", "--base-rps", "12", "--port", "0", "--seed", "7",
         "--target", stack.url("demo_app")],
        env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(SHIFTED_S)
        after = _drift(stack, SHIFTED_S - 30)
        assert after["drifted"] and "features" in after["reasons"], after
        drifted = sorted(f for f, v in after["features"].items() if v["drifted"])
        assert drifted, after

        # The stack's trainer component saw it too: exported, scraped, and the drift rule is active.
        deadline = time.monotonic() + 120
        exported = alert = None
        while time.monotonic() < deadline and not (exported and alert):
            exported = prom_value(stack, f'vigil_drift_reason{{entity="{ENTITY}",reason="features"}}')
            alert = prom_value(stack, f'ALERTS{{alertname="VigilInputDrift",entity="{ENTITY}"}}')
            time.sleep(5)
        assert exported == 1.0, "the trainer component did not export the drift to Prometheus"
        assert alert == 1.0, "the VigilInputDrift rule is neither pending nor firing"
        # Each check loads the champion and scores the window with it: background work, niced so that
        # it yields to the host's services and never reads as their CPU load.
        fields = stat_fields(stack.pids()["trainer"])
        assert fields is not None and int(fields[16]) == 10  # index 16: field 19, nice

        registry = ModelRegistry(settings)
        reference = DriftReference.from_dict(registry.bundle_json(ENTITY, champion, "drift_reference.json"))
        monitor = DriftMonitor(reference)
        frame = read_archive_window(ENTITY, SHIFTED_S - 30, settings)
        monitor.update_frame({c: frame[c].to_numpy() for c in frame.columns})
        # The window spans both regimes: the champion's alarms on the new one are masked out unless
        # they cover most of the window, and what is left must still fill a fold (120 steps).
        config = TrainConfig(n_folds=1, gap=10, min_train_fraction=0.6, model_params=dict(FAST_PARAMS))
        retrainer = Retrainer.for_stack(settings, registry, window_s=BASELINE_S + SHIFTED_S, config=config)
        trigger = DriftTrigger(retrainer)
        assert trigger.observe(ENTITY, monitor.snapshot())
        assert retrainer.status()["pending"][ENTITY].startswith("drift")
        reason = retrainer.status()["pending"][ENTITY]
        result = retrainer.run_once(ENTITY, reason)
    finally:
        extra.terminate()
        extra.wait(10)
    assert result is not None, retrainer.status()
    assert int(result.version) > int(champion)
    assert registry.aliases(ENTITY)["challenger"] == result.version
    training = registry.bundle_json(ENTITY, result.version, "training.json")
    assert training["window"] and window["version"] == champion
    listed = json.loads(stack.run("models", "list", ENTITY, "--json").stdout)
    assert [v["version"] for v in listed][-1] == result.version


def _entity(stack: StackCLI, entity: str) -> dict:
    import requests

    resp = requests.get(f"{stack.url('vigil')}/v1/entities/{entity}", timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_console_in_a_real_browser(stack: StackCLI, tmp_path: Path) -> None:
    """The operator's console (docs/ui.md) in Debian's headless Chromium, on this module's stack
    after its drift test: a real database outage makes the demo service's champion alarm, and each
    page shows it without a console error, with the numbers the API and Prometheus give; promote is
    refused without the admin token and works with it; a stopped Prometheus shows as a banner while
    Vigil's own numbers stay; text typed by an operator is shown as text. Screenshots of every page,
    at laptop and phone width, go to $VIGIL_UI_SCREENSHOTS (default: the test's temporary folder)."""
    import os
    import shutil
    import signal

    import requests
    from selenium.webdriver.common.by import By

    from tests.integration.browser import LAPTOP, PHONE, chromium, console_errors, open_page
    from vigil.config import load_settings
    from vigil.validation.livestack import wait_scoring

    vigil, ui = stack.url("vigil"), stack.url("vigil") + "/ui"
    shots = Path(os.environ.get("VIGIL_UI_SCREENSHOTS", str(tmp_path / "screenshots")))
    shots.mkdir(parents=True, exist_ok=True)
    token = (stack.home / "api_token").read_text().strip()
    assert wait_scoring(load_settings(), 120) >= 1
    # A sparkline needs two of its 30 s points of score history; run alone (or after a test that
    # ended early) the champion may have been served for less than that.
    deadline = time.monotonic() + 150
    while True:
        entities = requests.get(f"{vigil}/v1/overview", timeout=10).json()["entities"]
        spark = next((e["spark"] for e in entities if e["entity"] == ENTITY), [])
        if sum(v is not None for v in spark) >= 2:
            break
        assert time.monotonic() < deadline, f"no score history for {ENTITY}'s sparkline: {spark}"
        time.sleep(2)
    # The latest campaign report the validation page shows: a real run's, committed (tests/data/reports).
    report = stack.home / "validation" / "reports" / REPORT.name
    shutil.copytree(REPORT, report)

    db = stack.home / "demo" / "orders.db"
    moved = db.with_suffix(".outage")
    with chromium(tmp_path) as driver:
        db.rename(moved)  # the database goes away under the running service, until the incident is seen
        try:
            deadline = time.monotonic() + 90
            while not _entity(stack, ENTITY)["alarm"]:
                assert time.monotonic() < deadline, f"no alarm on {ENTITY} in the outage: {_entity(stack, ENTITY)}"
                time.sleep(1)
            incidents = requests.get(f"{vigil}/v1/incidents", timeout=10).json()["incidents"]
            incident = next(i for i in incidents if any(e["entity"] == ENTITY for e in i["entities"]))
            hostile_note = "<script>document.title='owned'</script><img src=x onerror=alert(1)>"
            feedback = {"action": "ack", "by": "browser-test", "note": hostile_note}
            fed = requests.post(f"{vigil}/v1/incidents/{incident['id']}/feedback", json=feedback,
                                headers={"Authorization": f"Bearer {token}"}, timeout=10)  # fmt: skip
            assert fed.status_code == 200, fed.text

            # Now: the alarmed entity with the score /v1/entities gives for the same step.
            for _ in range(5):
                open_page(driver, f"{ui}/")
                row = driver.find_element(By.CSS_SELECTOR, f'tr[data-entity="{ENTITY}"]')
                api = _entity(stack, ENTITY)
                if float(row.get_attribute("data-timestamp")) == api["timestamp"]:
                    break
            shown = float(row.find_element(By.CSS_SELECTOR, "td.num").get_attribute("data-value"))
            assert shown == pytest.approx(api["score"], abs=1e-12) and "ALARM" in row.text
            assert row.find_elements(By.CSS_SELECTOR, "svg.spark polyline"), "no sparkline drawn"
            assert incident["id"] in driver.find_element(By.ID, "content").text
            driver.save_screenshot(str(shots / "now.png"))
            driver.set_window_size(*PHONE)
            open_page(driver, f"{ui}/")
            driver.save_screenshot(str(shots / "now-phone.png"))
            driver.set_window_size(*LAPTOP)
            assert not console_errors(driver)

            # Entity: the same step's score, the threshold and the top signal as /v1/entities/<entity>.
            for _ in range(5):
                open_page(driver, f"{ui}/entities/{ENTITY}?window=15m")
                api = _entity(stack, ENTITY)
                score = driver.find_element(By.ID, "score-now")
                if float(score.get_attribute("data-timestamp")) == api["timestamp"]:
                    break
            assert float(score.get_attribute("data-value")) == pytest.approx(api["score"], abs=1e-12)
            threshold = float(driver.find_element(By.ID, "threshold").get_attribute("data-value"))
            assert threshold == pytest.approx(api["threshold"], abs=1e-12)
            top = api["contributions"][0]
            assert driver.find_element(By.ID, "top-metric").get_attribute("data-value") == top["metric"]
            deviation = driver.find_element(By.ID, "top-deviation").get_attribute("data-value")
            known = [x for x in (top["value"], top["baseline"]) if isinstance(x, float) and math.isfinite(x)]
            if len(known) < 2:  # a signal with no learned level (NaN in the API): no deviation shown
                assert deviation is None
            else:
                assert float(deviation) == pytest.approx(top["value"] - top["baseline"], rel=1e-9, abs=1e-12)
            # Its alarm periods are Prometheus' vigil_anomaly runs: the outage's among them.
            assert prom_value(stack, f'max_over_time(vigil_anomaly{{entity="{ENTITY}"}}[15m])') == 1.0
            assert driver.find_elements(By.CSS_SELECTOR, "#periods tbody tr"), "no alarm period listed"
            assert driver.find_elements(By.CSS_SELECTOR, "#score-chart canvas"), "no score chart drawn"
            assert driver.find_elements(By.CSS_SELECTOR, "figure[data-signal] canvas"), "no signal chart drawn"
            driver.save_screenshot(str(shots / "entity.png"))
            assert not console_errors(driver)

            # Incident: what chat was told (Vigil -> Alertmanager -> webhook -> explanation), with its
            # cause; the operator's note is text, not markup.
            deadline = time.monotonic() + 30
            while True:
                open_page(driver, f"{ui}/incidents/{incident['id']}")
                if driver.find_elements(By.CSS_SELECTOR, "section.message") or time.monotonic() > deadline:
                    break
                time.sleep(2)
            message = driver.find_element(By.CSS_SELECTOR, "section.message")
            assert ENTITY in message.find_element(By.TAG_NAME, "h3").text and "cause" in message.text
            assert driver.find_element(By.ID, "note").text == hostile_note
            assert driver.title != "owned" and not driver.find_elements(By.CSS_SELECTOR, "#content img[src='x']")
            assert ENTITY in driver.find_element(By.ID, "content").text
            driver.save_screenshot(str(shots / "incident.png"))
            assert not console_errors(driver)
        finally:
            moved.rename(db)

        # Models: promote refused without the admin token, done with it (typed into the form).
        open_page(driver, f"{ui}/models")
        button = driver.find_element(By.CSS_SELECTOR, f'button[data-action="promote"][data-model="{ENTITY}"]')
        version = button.get_attribute("data-version")
        button.click()
        driver.switch_to.alert.accept()
        result = driver.find_element(By.ID, "action-result")
        _wait(lambda: result.text.startswith("Refused"), "the refusal")
        assert "token" in result.text.lower()
        console_errors(driver)  # the refused request is logged as a failed load (401): expected, drained here
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
        _wait(lambda: driver.execute_script("return document.body.dataset.rendered === '1'"), "the reload")
        assert token not in driver.current_url
        assert not driver.get_cookies(), "the token must not travel in a cookie"
        open_page(driver, f"{ui}/models")  # same tab: the token is still there
        driver.find_element(By.CSS_SELECTOR, f'button[data-action="promote"][data-version="{version}"]').click()
        driver.switch_to.alert.accept()
        _wait(lambda: driver.find_element(By.ID, "action-result").text.startswith("Done"), "the promotion")
        listed = json.loads(stack.run("models", "list", ENTITY, "--json").stdout)
        assert "champion" in next(v for v in listed if v["version"] == version)["aliases"]
        open_page(driver, f"{ui}/models")
        assert "promote" in driver.find_element(By.ID, "content").text.lower()  # the recorded action
        driver.save_screenshot(str(shots / "models.png"))
        assert not console_errors(driver)

        open_page(driver, f"{ui}/validation")
        assert driver.find_element(By.ID, "summary").text and driver.find_elements(By.CSS_SELECTOR, ".plots img")
        driver.save_screenshot(str(shots / "validation.png"))
        assert not console_errors(driver)

        # Unknown ids: a 404 page, the id shown as text.
        driver.get(f"{ui}/entities/%3Cscript%3Edocument.title%3D'owned'%3C%2Fscript%3E")
        assert "There is no entity <script>" in driver.find_element(By.ID, "missing").text
        assert driver.title == "Not found · Vigil"
        driver.get_log("browser")  # the 404 itself is logged as a failed load: expected here

        # Prometheus stopped: a banner on the pages that need it, Vigil's own numbers still there.
        prometheus = stack.pids()["prometheus"]
        os.kill(prometheus, signal.SIGSTOP)
        try:
            open_page(driver, f"{ui}/entities/{ENTITY}?window=15m", timeout_s=40)
            banner = driver.find_element(By.ID, "banner")
            assert banner.is_displayed() and "Prometheus" in banner.text
            assert driver.find_element(By.ID, "threshold").get_attribute("data-value")
            driver.save_screenshot(str(shots / "prometheus-down.png"))
            open_page(driver, f"{ui}/models", timeout_s=40)
            assert driver.find_elements(By.CSS_SELECTOR, 'button[data-action="rollback"]')
        finally:
            os.kill(prometheus, signal.SIGCONT)
    print(f"console screenshots: {shots}")


def _wait(check: object, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:  # noqa: BLE001 - a page mid-render has stale elements
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_vigil_slo_reads_the_stacks_own_indicators(stack: StackCLI) -> None:
    """`vigil slo` over the last 10 minutes of this stack (docs/slo.md): remote_write requests and
    scored entities were counted, and the database outage's alerts reached Alertmanager within 5 s."""
    done = stack.run("slo", "--window", "10m", "--json", timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["objective"]: r for r in json.loads(done.stdout)}
    ingest, fresh, alerts = rows["ingest availability"], rows["scoring freshness"], rows["alert delivery latency"]
    assert ingest["events"] > 100 and ingest["good_share"] > 0.99, ingest
    assert fresh["good_share"] is not None and fresh["good_share"] > 0.9, fresh
    assert alerts["events"] >= 1 and alerts["met"], alerts
    chat = rows["chat delivery"]
    assert chat["events"] == 0 or chat["good_share"] is not None, chat  # the stack posts to no chat


def test_backup_while_running_then_a_wiped_home_restored_serves_the_same(stack: StackCLI, tmp_path: Path) -> None:
    """`vigil backup` while this module's stack runs (collector writing, serving scoring); then the
    stack stops, its home is wiped (moved aside), `vigil restore` rebuilds it, and a `vigil serve` on
    the restored home gives identical scores for the same feature rows; the registry lists the same
    versions and aliases, and the archive holds the same samples up to the backup. Last in the
    module: the stack does not come back."""
    import shutil

    import pandas as pd
    import requests

    from tests.integration.server.realprocs import vigil_serve
    from vigil.config import load_settings
    from vigil.ingest.archive import Archive
    from vigil.registry import ModelRegistry
    from vigil.training.data import read_archive_window

    settings = load_settings()
    registry = ModelRegistry(settings)
    _info, model = registry.load(ENTITY)
    features = model.features_frame(read_archive_window(ENTITY, 120, settings)).dropna()  # type: ignore[attr-defined]
    assert len(features) >= 30
    body = {"model": ENTITY, "columns": {c: features[c].tolist() for c in features.columns}}
    live = requests.post(f"{stack.url('vigil')}/v1/predict", json=body, timeout=30)
    assert live.status_code == 200, live.text
    versions = [(v.name, v.version, v.aliases) for v in registry.list_versions()]

    done = stack.run("backup", "--to", str(tmp_path / "backups"), "--json", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    backed_up = json.loads(done.stdout)
    cutoff = time.time() - 60  # archived well before the backup began, whatever the collector's lag
    archive_before = Archive(settings.archive_dir).read(end=cutoff)
    assert len(archive_before) > 1000

    assert stack.run("down", timeout=120).returncode == 0
    wiped = stack.home.with_name(stack.home.name + ".wiped")
    stack.home.rename(wiped)
    restored = stack.run("restore", "--from", backed_up["path"], "--json", timeout=300)
    assert restored.returncode == 0, restored.stderr[-2000:]
    assert json.loads(restored.stdout)["files"] == backed_up["files"]
    shutil.rmtree(wiped)  # nothing of the old home may be needed from here on

    assert [(v.name, v.version, v.aliases) for v in ModelRegistry(settings).list_versions()] == versions
    pd.testing.assert_frame_equal(Archive(settings.archive_dir).read(end=cutoff), archive_before)
    with vigil_serve(stack.home, alertmanager_url="http://127.0.0.1:9") as url:
        deadline = time.monotonic() + 60
        while (again := requests.post(f"{url}/v1/predict", json=body, timeout=30)).status_code == 503:
            assert time.monotonic() < deadline, again.text
            time.sleep(1)
        assert again.status_code == 200, again.text
        assert again.json()["scores"] == live.json()["scores"]
        assert again.json()["model_version"] == live.json()["model_version"]
