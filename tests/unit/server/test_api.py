"""/v1/predict, health, models, auth and /metrics over real HTTP."""

from __future__ import annotations

import base64
import getpass
import json
import time

import numpy as np
import pytest
import requests
from prometheus_client import CollectorRegistry

from tests.unit.detection.realmodel import frame, save_model, trained
from tests.unit.server.payloads import HEADERS, body
from vigil.config import Settings
from vigil.detection.alerts import AlertDispatcher
from vigil.detection.service import DetectionService
from vigil.events import Anomaly
from vigil.server.metrics import DetectionCollector

AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    return trained().features_frame(frame("test", 0, 200)).to_numpy()[100:140]


def predict(url: str, payload: object) -> requests.Response:
    return requests.post(f"{url}/v1/predict", json=payload, timeout=30)


def test_predict_forms_agree_with_the_model(base_url: str, features: np.ndarray) -> None:
    model = trained()
    want = model.score_features(features)
    names = list(model.feature_names_)
    rows = predict(base_url, {"instances": features.tolist()})
    assert rows.status_code == 200, rows.text
    np.testing.assert_allclose(rows.json()["scores"], want, atol=1e-9)
    dicts = predict(base_url, {"instances": [dict(zip(names, r, strict=True)) for r in features[:3].tolist()]})
    np.testing.assert_allclose(dicts.json()["scores"], want[:3], atol=1e-9)
    cols = predict(base_url, {"columns": {n: features[:, j].tolist() for j, n in enumerate(names)}})
    np.testing.assert_allclose(cols.json()["scores"], want, atol=1e-9)
    data = base64.b64encode(np.ascontiguousarray(features.T, dtype="<f8").tobytes()).decode()
    compact = predict(base_url, {"names": names, "rows": len(features), "dtype": "float64", "data": data})
    np.testing.assert_allclose(compact.json()["scores"], want, atol=1e-9)
    assert compact.json()["threshold"] == pytest.approx(model.threshold_)


def test_predict_rejects_bad_input_with_reasons(base_url: str, features: np.ndarray, service: DetectionService) -> None:
    names = list(trained().feature_names_)
    bad_nan = features[:2].copy()
    bad_nan[1, 3] = np.nan
    cases = [
        ({"instances": [[1.0, 2.0]]}, 400, "numbers"),
        ({"instances": features[:2].tolist()[:1] + [["x"] * len(names)]}, 400, "numbers"),
        ({"columns": {"nope": [1.0]}}, 400, "missing features"),
        ({"instances": [{"nope": 1.0}]}, 400, "missing features"),
        ({"instances": [dict.fromkeys(names, 1.0), {**dict.fromkeys(names, 1.0), names[2]: "abc"}]}, 400, "row 1"),
        ({"instances": [{**dict.fromkeys(names, 1.0), names[0]: True}]}, 400, names[0]),
        ({"instances": [{**dict.fromkeys(names, 1.0), names[0]: 10**400}]}, 400, "double"),
        ({"something": 1}, 400, "expected one of"),
        ({"names": names, "rows": 2, "dtype": "float64", "data": "!!"}, 400, "base64"),
        ({"names": names[::-1], "rows": 1, "data": ""}, 400, "names"),
    ]
    for payload, status, word in cases:
        resp = predict(base_url, payload)
        assert resp.status_code == status, payload
        assert word in resp.json()["error"]
    resp = requests.post(
        f"{base_url}/v1/predict",
        data='{"instances": ' + str(bad_nan.tolist()).replace("nan", "NaN") + "}",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 400 and "not a finite number" in resp.json()["error"]
    many = service.settings.serving.max_predict_rows + 1
    resp = predict(base_url, {"names": names, "rows": many, "data": ""})
    assert resp.status_code == 413
    resp = requests.post(f"{base_url}/v1/predict", data="rows", headers={"Content-Type": "text/plain"}, timeout=10)
    assert resp.status_code == 415
    resp = requests.post(f"{base_url}/v1/predict", data="{", headers={"Content-Type": "application/json"}, timeout=10)
    assert resp.status_code == 400


def test_health_and_readiness(base_url: str) -> None:
    assert requests.get(f"{base_url}/livez", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{base_url}/readyz", timeout=5)
    assert ready.status_code == 503 and "no data" in ready.json()["reasons"][0]
    assert requests.post(f"{base_url}/api/v1/write", data=body("db-1", range(0, 3)), headers=HEADERS, timeout=30).ok
    ready = requests.get(f"{base_url}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["ready"]
    models = requests.get(f"{base_url}/v1/models", timeout=5).json()
    assert models["serving"]["version"] == "smd-a" and models["serving"]["fast_path"]
    assert models["champion"] == "smd-a" and models["versions"] == ["smd-a"]
    assert requests.get(f"{base_url}/no/such/path", timeout=5).json()["error"]


def test_mutating_endpoints_need_the_token(base_url: str, settings: Settings) -> None:
    non_ascii = {"Authorization": "Bearer t\u00e9st-token".encode().decode("latin-1")}  # raw UTF-8 bytes
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic test-token"}, non_ascii):
        resp = requests.post(f"{base_url}/v1/models/reload", headers=headers, timeout=30)
        assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.post(f"{base_url}/v1/models/reload", headers=AUTH, timeout=60).json() == {"serving": "smd-a"}
    resp = requests.post(f"{base_url}/v1/models/promote", json={"version": "nope"}, headers=AUTH, timeout=30)
    assert resp.status_code == 404
    save_model(settings.models_dir, "smd-b", seed=1)
    resp = requests.post(f"{base_url}/v1/models/promote", json={"version": "smd-b"}, headers=AUTH, timeout=120)
    assert resp.status_code == 200 and resp.json() == {"serving": "smd-b"}
    assert (settings.models_dir / "champion").read_text().strip() == "smd-b"


def test_generated_token_is_private(vigil_home, service: DetectionService) -> None:  # noqa: ANN001
    from vigil.config import load_settings
    from vigil.tokens import resolve_token

    token = resolve_token(load_settings(home=vigil_home))
    assert len(token) >= 32 and (vigil_home / "api_token").stat().st_mode & 0o077 == 0
    assert resolve_token(load_settings(home=vigil_home)) == token


def test_collector_in_a_fresh_registry(base_url: str, service: DetectionService) -> None:
    requests.post(f"{base_url}/api/v1/write", data=body("db-9", range(0, 4)), headers=HEADERS, timeout=30)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DetectionCollector(service))
    score = registry.get_sample_value("vigil_anomaly_score", {"entity": "db-9"})
    assert score is not None and 0.0 <= score <= 1.0
    assert registry.get_sample_value("vigil_anomaly", {"entity": "db-9"}) in (0.0, 1.0)
    assert (
        registry.get_sample_value("vigil_model_info", {"model": "default", "version": "smd-a", "fast_path": "true"})
        == 1.0
    )
    assert registry.get_sample_value("vigil_samples_total", {"outcome": "accepted"}) == 4 * 38
    assert registry.get_sample_value("vigil_remote_write_requests_total", {"code": "204"}) == 1
    assert registry.get_sample_value("vigil_ingest_to_score_seconds_count") == 4
    assert registry.get_sample_value("vigil_steps_total", {"outcome": "scored"}) == 4


def test_entity_detail_and_unknown_entity(base_url: str) -> None:
    requests.post(f"{base_url}/api/v1/write", data=body("db-7", range(0, 3)), headers=HEADERS, timeout=30)
    detail = requests.get(f"{base_url}/v1/entities/db-7", timeout=5)
    assert detail.status_code == 200 and detail.json()["model_version"] == "smd-a"
    missing = requests.get(f"{base_url}/v1/entities/no-such-host", timeout=5)
    assert missing.status_code == 404 and "no scored entity" in missing.json()["error"]


def test_an_alarm_opens_an_incident_and_the_topology_is_served(base_url: str, service: DetectionService) -> None:
    batch = trained().score_frame(frame("test", 0, 2000))
    first_alarm = int(np.flatnonzero(batch["alarm"].to_numpy())[0])
    assert requests.get(f"{base_url}/v1/incidents", timeout=5).json() == {"incidents": []}
    # What serving hands to alerting (here collected instead of posted to Alertmanager).
    handed: list[Anomaly] = []
    service.dispatcher = AlertDispatcher(lambda events: handed.extend(events) or len(events))
    # The real test half from 60 steps before its first alarm, in one remote_write request.
    steps = range(first_alarm - 60, first_alarm + 1)
    assert requests.post(f"{base_url}/api/v1/write", data=body("db-5", steps), headers=HEADERS, timeout=30).ok
    (incident,) = requests.get(f"{base_url}/v1/incidents", timeout=5).json()["incidents"]
    assert incident["status"] == "open" and incident["resolved"] is None
    assert [(e["entity"], e["alarm"]) for e in incident["entities"]] == [("db-5", True)]
    deadline = time.monotonic() + 10
    while not handed and time.monotonic() < deadline:
        time.sleep(0.05)
    # The alert carries its incident, so chat can post one message per incident.
    assert handed and {e.incident for e in handed} == {incident["id"]}
    topology = requests.get(f"{base_url}/v1/topology", timeout=5).json()
    assert topology == {"services": {"demo": {"host": "127.0.0.1", "depends_on": ["inventory", "database"]}}}
    # The CLI reads the same from the running service, and the topology from the settings.
    from typer.testing import CliRunner

    from tests.conftest import free_port
    from vigil.cli.main import app
    from vigil.errors import UpstreamUnavailable

    listed = CliRunner().invoke(app, ["incidents", "--url", base_url])
    assert listed.exit_code == 0 and f"{incident['id']}  open" in listed.stdout and "db-5*" in listed.stdout
    dead = CliRunner().invoke(app, ["incidents", "--url", f"http://127.0.0.1:{free_port()}"])
    assert isinstance(dead.exception, UpstreamUnavailable) and "did not answer" in str(dead.exception)
    shown = CliRunner().invoke(app, ["topology", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout) == topology


def test_operator_feedback_on_an_incident_is_kept_across_a_restart(
    base_url: str, service: DetectionService, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = trained().score_frame(frame("test", 0, 2000))
    first_alarm = int(np.flatnonzero(batch["alarm"].to_numpy())[0])
    steps = range(first_alarm - 60, first_alarm + 1)
    assert requests.post(f"{base_url}/api/v1/write", data=body("db-5", steps), headers=HEADERS, timeout=30).ok
    (incident,) = requests.get(f"{base_url}/v1/incidents", timeout=5).json()["incidents"]
    url = f"{base_url}/v1/incidents/{incident['id']}/feedback"
    answer = requests.post(url, json={"action": "false_positive", "by": "ana", "note": "load test"}, headers=AUTH)
    assert answer.ok and answer.json()["incident"]["verdict"] == "false_positive"
    # Refused with a reason: no token, an unknown action, an unknown incident, a body that is no object.
    assert requests.post(url, json={"action": "ack"}, timeout=5).status_code == 401
    wrong = requests.post(url, json={"action": "delete"}, headers=AUTH, timeout=5)
    assert wrong.status_code == 400 and "unknown feedback 'delete'" in wrong.json()["error"]
    missing = requests.post(f"{base_url}/v1/incidents/nope/feedback", json={"action": "ack"}, headers=AUTH)
    assert missing.status_code == 404 and "no incident 'nope'" in missing.json()["error"]
    assert requests.post(url, json=["ack"], headers=AUTH, timeout=5).status_code == 400
    # The CLI acknowledges it with the admin token.
    from typer.testing import CliRunner

    from vigil.cli.main import app

    monkeypatch.setenv("VIGIL_API_TOKEN", "test-token")
    acked = CliRunner().invoke(app, ["incidents", "--url", base_url, "--ack", incident["id"]])
    assert acked.exit_code == 0 and acked.stdout.strip() == f"{incident['id']}: acknowledged, verdict false_positive"
    unknown = CliRunner().invoke(app, ["incidents", "--url", base_url, "--confirm", "nope"])
    assert unknown.exit_code != 0 and "no incident 'nope'" in str(unknown.exception)
    # A restart keeps the incident and what the operator said of it.
    service.save_incidents()
    again = DetectionService(settings, send_alerts=False)
    try:
        (kept,) = again.incident_list()
        # The CLI's acknowledgement came last, by this user and without a note: ana's is not credited to them.
        assert (kept["id"], kept["verdict"], kept["feedback_by"], kept["note"], kept["acknowledged"] is not None) == (
            incident["id"], "false_positive", getpass.getuser(), "", True)  # fmt: skip
    finally:
        again.close()
    # An unreadable file is moved aside, and serving starts without the incidents.
    service.incidents_path.write_text("{not json")
    cold = DetectionService(settings, send_alerts=False)
    try:
        assert cold.incident_list() == [] and service.incidents_path.with_suffix(".json.corrupt").exists()
    finally:
        cold.close()


def test_under_maintenance_an_alarm_pages_nobody_and_opens_no_incident(settings: Settings, model_dir) -> None:  # noqa: ANN001
    from datetime import UTC, datetime

    from tests.unit.server.livehttp import serve
    from vigil.config import MaintenanceWindow
    from vigil.server import create_app

    window = MaintenanceWindow(start=datetime(2000, 1, 1, tzinfo=UTC), end=datetime(2100, 1, 1, tzinfo=UTC),
                               entities=["db-5"], reason="kernel update")  # fmt: skip
    quiet = settings.model_copy(update={"maintenance": [window]})
    batch = trained().score_frame(frame("test", 0, 2000))
    first_alarm = int(np.flatnonzero(batch["alarm"].to_numpy())[0])
    service = DetectionService(quiet, send_alerts=False)
    handed: list[Anomaly] = []
    service.dispatcher = AlertDispatcher(lambda events: handed.extend(events) or len(events))
    try:
        with serve(create_app(quiet, service=service)) as url:
            steps = range(first_alarm - 60, first_alarm + 1)
            assert requests.post(f"{url}/api/v1/write", data=body("db-5", steps), headers=HEADERS, timeout=30).ok
            assert requests.get(f"{url}/v1/entities/db-5", timeout=5).json()["alarm"]  # scored as ever
            assert requests.get(f"{url}/v1/incidents", timeout=5).json() == {"incidents": []}
            time.sleep(0.5)  # the dispatcher thread had its chance
            assert handed == [] and dict(service.stats.counters.items("alerts"))["maintenance"] >= 1
    finally:
        service.close()


def test_maintenance_declared_through_the_api_holds_across_a_restart_and_ends_on_request(
    base_url: str, service: DetectionService, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deploy announced at run time: the entity's alarm is scored but pages nobody and opens no
    incident; a restart in the middle keeps the window; ending it keeps its span on record (the
    retrainer must still leave it out), and only later alarms page again. Bad windows get a reason."""
    from datetime import UTC, datetime

    from typer.testing import CliRunner

    from tests.unit.detection.realmodel import T0
    from vigil.cli.main import app
    from vigil.training.labels import maintenance_periods

    handed: list[Anomaly] = []
    service.dispatcher = AlertDispatcher(lambda events: handed.extend(events) or len(events))
    url = f"{base_url}/v1/maintenance"
    bad = [
        ({"entities": ["db-7"]}, 'either "end"'),
        ({"entities": ["db-7"], "duration_s": 60, "end": "2100-01-01T00:00:00Z"}, 'either "end"'),
        ({"duration_s": -5}, "positive number"),
        ({"duration_s": "1e400"}, "positive number"),
        ({"duration_s": 30 * 86400}, "at most 7 days"),
        ({"end": "2001-01-01T00:00:00Z"}, "must end after it starts"),
        ({"start": "2001-01-01T00:00:00Z", "end": "2001-01-01T01:00:00Z"}, "already over"),
        ({"end": "2100-01-01T00:00:00"}, "timezone"),
        ({"duration_s": 60, "start": "9999-12-31T23:59:00Z"}, "calendar"),
        ({"duration_s": 60, "entities": "db-7"}, "not a maintenance window"),
        ({"duration_s": 60, "why": "x"}, "unknown field(s) why"),
        (["db-7"], "send JSON"),
    ]
    for payload, reason in bad:
        resp = requests.post(url, json=payload, headers=AUTH, timeout=5)
        assert resp.status_code == 400 and reason in resp.json()["error"], (payload, resp.text)
    assert requests.post(url, json={"duration_s": 60}, timeout=5).status_code == 401  # the admin token
    monkeypatch.setenv("VIGIL_API_TOKEN", "test-token")
    begun = datetime.fromtimestamp(T0, UTC).isoformat()  # where the replayed samples begin, 45 minutes ago
    added = CliRunner().invoke(app, ["maintenance", "--url", base_url, "--add", "db-7", "--for", "2h",
                                     "--start", begun, "--reason", "kernel update", "--json"])  # fmt: skip
    assert added.exit_code == 0, added.output
    window = json.loads(added.stdout)
    assert (window["entities"], window["state"], window["reason"]) == (["db-7"], "active", "kernel update")
    assert (window["start"], window["end"]) == (T0, T0 + 7200)

    batch = trained().score_frame(frame("test", 0, 2000))
    first_alarm = int(np.flatnonzero(batch["alarm"].to_numpy())[0])
    steps = range(first_alarm - 60, first_alarm + 1)
    assert requests.post(f"{base_url}/api/v1/write", data=body("db-7", steps), headers=HEADERS, timeout=30).ok
    assert requests.get(f"{base_url}/v1/entities/db-7", timeout=5).json()["alarm"]  # scored as ever
    assert requests.get(f"{base_url}/v1/incidents", timeout=5).json() == {"incidents": []}
    time.sleep(0.5)  # the dispatcher thread had its chance
    assert handed == []

    restarted = DetectionService(settings, send_alerts=False)  # a restart during the deploy
    try:
        (kept,) = restarted.maintenance.windows()
        assert kept["id"] == window["id"] and restarted.maintenance.covers("db-7", time.time())
    finally:
        restarted.close()
    listed = CliRunner().invoke(app, ["maintenance", "--url", base_url])
    assert listed.exit_code == 0 and window["id"] in listed.stdout and "kernel update" in listed.stdout
    ended = requests.delete(f"{url}/{window['id']}", headers=AUTH, timeout=5)
    assert ended.ok and ended.json()["window"]["state"] == "over"
    missing = requests.delete(f"{url}/nope", headers=AUTH, timeout=5)
    assert missing.status_code == 404 and "no maintenance window 'nope'" in missing.json()["error"]
    (over,) = requests.get(url, timeout=5).json()["windows"]
    (period,) = maintenance_periods([over], "db-7")  # what the retrainer leaves out
    assert (period.start, period.end, period.verdict) == (window["start"], over["end"], "maintenance")
    assert maintenance_periods([over], "db-8") == []
    # Its span stays: alarms stamped inside it still page nobody (the replayed steps are 45 minutes
    # old), while from now on the entity pages again.
    later = range(first_alarm + 1, 700)
    assert requests.post(f"{base_url}/api/v1/write", data=body("db-7", later), headers=HEADERS, timeout=30).ok
    time.sleep(0.5)
    assert handed and not any(a.active for a in handed)  # resolves still go out
    assert not service.maintenance.covers("db-7", time.time() + 1)


def test_a_model_that_cannot_be_loaded_degrades_serving_without_stopping_it(vigil_home) -> None:  # noqa: ANN001
    from tests.unit.detection.realmodel import save_model
    from vigil.config import load_settings
    from vigil.detection.service import DetectionService

    settings = load_settings(home=vigil_home)
    path = save_model(settings.models_dir, "broken")
    # A half-written artifact, as a crash during a copy leaves it: real bytes, cut short.
    artifact = path / "model.joblib"
    artifact.write_bytes(artifact.read_bytes()[:4096])
    service = DetectionService(settings, send_alerts=False)
    try:
        service.start()  # must not raise
        state = service.readiness()
        assert not state.ready and any("no model loaded" in r for r in state.reasons)
        assert service.stats.counters.get("model_reloads", "failed") == 1
        service.reload()  # the same broken artifact is not retried on every poll
        assert service.stats.counters.get("model_reloads", "failed") == 1
    finally:
        service.close()


def test_read_token_guards_the_read_endpoints(vigil_home, model_dir, tmp_path, features) -> None:  # noqa: ANN001
    from tests.unit.server.livehttp import serve
    from vigil.config import load_settings
    from vigil.server import create_app

    (tmp_path / "reader.secret").write_text("read-token\n")
    settings = load_settings(
        home=vigil_home, api_token="test-token", api_read_token_file=str(tmp_path / "reader.secret")
    )
    assert settings.api_read_token == "read-token" and "read-token" not in repr(settings)
    read = {"Authorization": "Bearer read-token"}
    service = DetectionService(settings, send_alerts=False)
    try:
        with serve(create_app(settings, service=service)) as url:
            reads = [
                ("GET", "/v1/models", None),
                ("GET", "/v1/entities", None),
                ("GET", "/v1/entities/db-1", None),
                ("GET", "/v1/incidents", None),
                ("GET", "/v1/topology", None),
                ("GET", "/v1/maintenance", None),
                ("POST", "/v1/predict", {"instances": features[:2].tolist()}),
            ]
            for method, path, payload in reads:
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer test-token2"}):
                    resp = requests.request(method, f"{url}{path}", json=payload, headers=headers, timeout=30)
                    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer"), path
                for headers in (read, AUTH):
                    resp = requests.request(method, f"{url}{path}", json=payload, headers=headers, timeout=30)
                    assert resp.status_code == (404 if path == "/v1/entities/db-1" else 200), (path, resp.text)
            entities = requests.get(f"{url}/v1/entities", headers=read, timeout=10)
            assert entities.json() == {"entities": []}
            # Basic auth's password carries a token too (see vigil.server.auth), any user name.
            basic = requests.get(f"{url}/v1/entities", auth=("grafana", "read-token"), timeout=10)
            assert basic.status_code == 200
            # Unchanged by the read token: metrics, ingest and the probes.
            assert requests.get(f"{url}/metrics", timeout=10).status_code == 200
            assert requests.get(f"{url}/livez", timeout=10).status_code == 200
            reload = f"{url}/v1/models/reload"
            assert requests.post(reload, headers=read, timeout=30).status_code == 401
            assert requests.post(reload, headers=AUTH, timeout=60).json() == {"serving": "smd-a"}
    finally:
        service.close()
