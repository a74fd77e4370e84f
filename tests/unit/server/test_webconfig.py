"""The web config (exporter-toolkit's format): TLS under a real gunicorn, basic auth over real HTTP,
and a bad file refused with an error naming the key and the file.

Certificates are made here, into tmp_path: a throwaway CA that signs the server's and a client's;
a second, self-signed client certificate stands for a client the CA never vouched for.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import free_port
from tests.integration.server.realprocs import process
from tests.unit.server.livehttp import serve
from vigil.config import Settings, load_settings
from vigil.detection.service import DetectionService
from vigil.errors import ConfigError, Overloaded
from vigil.server import create_app
from vigil.server.gunicorn_conf import options
from vigil.server.webconfig import BasicAuthGate, load_web_config
from vigil.tokens import webhook_token_file

API_TOKEN = "admin-token"
SCRAPE = ("prometheus", "scrape-password")


def _hash(password: str, rounds: int = 4) -> str:
    # Cost 4, the least bcrypt takes, keeps the tests fast; the cache test uses a real cost.
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def _certificate(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    usage: x509.ObjectIdentifier | None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=usage is None, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if usage is None:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{stem}-key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem, server.pem/-key.pem and client.pem/-key.pem signed by it, rogue.pem/-key.pem self-signed."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("vigil test CA", ca_key, None, None)
    _write(folder, "ca", ca, ca_key)
    for stem, usage, issuer in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH, (ca, ca_key)),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH, (ca, ca_key)),
        ("rogue", ExtendedKeyUsageOID.CLIENT_AUTH, None),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(folder, stem, _certificate(f"vigil test {stem}", key, issuer, usage), key)
    return folder


def _web_config(path: Path, config: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def _tls(pki: Path, **extra: str) -> dict[str, str]:
    return {"cert_file": str(pki / "server.pem"), "key_file": str(pki / "server-key.pem"), **extra}


# -- parsing -----------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_file_and_reach_gunicorn(pki: Path, vigil_home: Path) -> None:
    web = _web_config(
        pki / "web.yml",
        {
            "tls_server_config": {
                "cert_file": "server.pem",
                "key_file": "server-key.pem",
                "client_ca_file": "ca.pem",
                "client_auth_type": "RequireAndVerifyClientCert",
            }
        },
    )
    opts = options(load_settings(home=vigil_home, serving={"web_config_file": str(web)}))
    assert opts["certfile"] == str(pki / "server.pem") and opts["keyfile"] == str(pki / "server-key.pem")
    assert opts["ca_certs"] == str(pki / "ca.pem") and opts["cert_reqs"] == 2  # ssl.CERT_REQUIRED
    server_only = _web_config(pki / "server-only.yml", {"tls_server_config": _tls(pki)})
    assert load_web_config(str(server_only)).gunicorn_options()["cert_reqs"] == 0  # ssl.CERT_NONE
    plain = options(load_settings(home=vigil_home))
    assert plain["certfile"] is None and plain["ca_certs"] is None and plain["cert_reqs"] == 0


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"http_server_config": {"http2": True}}, "unknown key http_server_config"),
        ({"tls_server_config": {**_tls(Path("/nonexistent")), "min_version": "TLS13"}}, "min_version"),
        ({"tls_server_config": {"cert_file": "missing.pem", "key_file": "missing-key.pem"}}, "missing.pem"),
        ({"tls_server_config": {"key_file": "missing-key.pem"}}, "tls_server_config.cert_file"),
        ({"basic_auth_users": {"alice": "plain-text-password"}}, "not a bcrypt hash"),
        ({"basic_auth_users": {"a:b": _hash("pw")}}, "colon"),
    ],
)
def test_a_bad_web_config_is_refused_naming_the_key_and_the_file(
    tmp_path: Path, config: dict[str, object], named: str
) -> None:
    web = _web_config(tmp_path / "web.yml", config)
    with pytest.raises(ConfigError, match=named) as caught:
        load_web_config(str(web))
    assert str(web) in str(caught.value)
    assert "plain-text-password" not in str(caught.value)


def test_tls_settings_that_cannot_work_are_refused(pki: Path, tmp_path: Path, vigil_home: Path) -> None:
    cases = [
        (_tls(pki, client_ca_file=str(pki / "ca.pem")), "client_auth_type is NoClientCert"),
        (_tls(pki, client_auth_type="RequireAndVerifyClientCert"), "needs client_ca_file"),
        (_tls(pki, client_auth_type="RequestClientCert"), "client_auth_type"),
        ({"cert_file": str(pki / "server.pem"), "key_file": str(pki / "client-key.pem")}, "cannot be loaded"),
    ]
    for tls, named in cases:
        web = _web_config(tmp_path / "web.yml", {"tls_server_config": tls})
        with pytest.raises(ConfigError, match=named):
            load_web_config(str(web))
    # `vigil serve` builds its gunicorn options first: a bad file stops it before anything binds.
    with pytest.raises(ConfigError, match="nope.yml cannot be read"):
        options(load_settings(home=vigil_home, serving={"web_config_file": str(tmp_path / "nope.yml")}))
    (tmp_path / "broken.yml").write_text("tls_server_config: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_web_config(str(tmp_path / "broken.yml"))
    (tmp_path / "empty.yml").write_text("")
    assert load_web_config(str(tmp_path / "empty.yml")).gunicorn_options()["certfile"] is None


# -- TLS under gunicorn ------------------------------------------------------------------------


@contextmanager
def _gunicorn(home: Path, web: Path, ca: str, cert: tuple[str, str]) -> Iterator[int]:
    """`gunicorn -c python:vigil.server.gunicorn_conf vigil.server.wsgi:app`: the module-level names."""
    port = free_port()
    env = {
        **os.environ,
        "VIGIL_HOME": str(home),
        "VIGIL_PORTS__VIGIL": str(port),
        "VIGIL_SERVING__WEB_CONFIG_FILE": str(web),
        "VIGIL_API_TOKEN": API_TOKEN,
        "VIGIL_ALERTMANAGER_URL": f"http://127.0.0.1:{free_port()}",
    }
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:vigil.server.gunicorn_conf", "vigil.server.wsgi:app"]
    log = home / "gunicorn.log"
    with process(argv, log, env) as proc:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"https://127.0.0.1:{port}/livez", verify=ca, cert=cert, timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not answer over TLS:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield port


def test_tls_with_client_certificates_and_basic_auth_under_gunicorn(vigil_home: Path, pki: Path) -> None:
    web = _web_config(
        vigil_home / "web.yml",
        {
            "tls_server_config": _tls(
                pki, client_ca_file=str(pki / "ca.pem"), client_auth_type="RequireAndVerifyClientCert"
            ),
            "basic_auth_users": {SCRAPE[0]: _hash(SCRAPE[1])},
        },
    )
    ca = str(pki / "ca.pem")
    client = (str(pki / "client.pem"), str(pki / "client-key.pem"))
    with _gunicorn(vigil_home, web, ca, client) as port:
        url = f"https://127.0.0.1:{port}"
        assert requests.get(f"{url}/livez", verify=ca, cert=client, timeout=10).json() == {"status": "ok"}
        refused = requests.get(f"{url}/metrics", verify=ca, cert=client, timeout=10)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == 'Basic realm="vigil"'
        scraped = requests.get(f"{url}/metrics", verify=ca, cert=client, auth=SCRAPE, timeout=10)
        assert scraped.status_code == 200 and "vigil_" in scraped.text
        # The server's certificate is ours, not one the system's CAs know.
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{url}/livez", cert=client, timeout=10)
        # No client certificate, or one our CA did not sign: the handshake fails, no HTTP answer.
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/livez", verify=ca, timeout=10)
        with pytest.raises(requests.ConnectionError):
            requests.get(
                f"{url}/livez", verify=ca, cert=(str(pki / "rogue.pem"), str(pki / "rogue-key.pem")), timeout=10
            )
        # Plain HTTP to the TLS port gets no HTTP answer at all.
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/livez", timeout=10)


# -- basic auth --------------------------------------------------------------------------------


@pytest.fixture
def basic_settings(vigil_home: Path, model_dir: Path) -> Settings:
    web = _web_config(
        vigil_home / "web.yml",
        {"basic_auth_users": {SCRAPE[0]: _hash(SCRAPE[1]), "admin": _hash(API_TOKEN)}},
    )
    return load_settings(home=vigil_home, api_token=API_TOKEN, serving={"web_config_file": str(web)})


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_gates_every_endpoint_but_the_probes(basic_settings: Settings) -> None:
    service = DetectionService(basic_settings, send_alerts=False)
    try:
        with serve(create_app(basic_settings, service=service)) as url:
            assert requests.get(f"{url}/livez", timeout=10).json() == {"status": "ok"}
            ready = requests.get(f"{url}/readyz", timeout=10)
            assert ready.status_code == 503 and ready.json()["ready"] is False  # no data yet, but not 401
            for headers in (
                {},
                _basic(SCRAPE[0], "wrong"),
                _basic("nobody", SCRAPE[1]),
                {"Authorization": f"Bearer {API_TOKEN}"},
                {"Authorization": "Basic !!"},
                {"Authorization": "Basic " + base64.b64encode(b"prometheus:" + b"x" * 100).decode()},
                {"Authorization": "Basic \u00e9t\u00e9"},
            ):
                for path in ("/metrics", "/v1/entities", "/no/such/path"):
                    resp = requests.get(f"{url}{path}", headers=headers, timeout=10)
                    assert resp.status_code == 401, (path, headers)
                    assert resp.headers["WWW-Authenticate"] == 'Basic realm="vigil"'
                    assert "basic auth" in resp.json()["error"]
            scrape = _basic(*SCRAPE)
            assert requests.get(f"{url}/metrics", headers=scrape, timeout=10).status_code == 200
            assert requests.get(f"{url}/v1/entities", headers=scrape, timeout=10).json() == {"entities": []}
            assert requests.get(f"{url}/no/such/path", headers=scrape, timeout=10).status_code == 404
            # The chat endpoints authenticate each request themselves: the webhook's own token passes.
            hook = f"{url}/v1/alertmanager"
            token = {"Authorization": f"Bearer {webhook_token_file(basic_settings).read_text()}"}
            assert requests.post(hook, json={"alerts": []}, headers=token, timeout=10).status_code == 200
            assert requests.post(hook, json={"alerts": []}, headers=scrape, timeout=10).status_code == 401
            # The admin role applies on top: a user who passes the gate is not an admin by that.
            reload = f"{url}/v1/models/reload"
            denied = requests.post(reload, headers=scrape, timeout=30)
            assert denied.status_code == 401 and denied.headers["WWW-Authenticate"].startswith("Bearer")
            # One header cannot carry both: the admin token is the password of a user hashed from it.
            done = requests.post(reload, headers=_basic("admin", API_TOKEN), timeout=60)
            assert done.status_code == 200 and done.json() == {"serving": "smd-a"}
    finally:
        service.close()


def test_successful_checks_are_remembered_and_failures_are_not() -> None:
    gate = BasicAuthGate({"prometheus": _hash("right", rounds=12)})
    header = _basic("prometheus", "right")["Authorization"]
    start = time.perf_counter()
    assert gate.check(header)
    first = time.perf_counter() - start
    start = time.perf_counter()
    assert gate.check(header)
    again = time.perf_counter() - start
    assert again * 5 < first, (first, again)  # bcrypt at cost 12 is ~0.25 s; a remembered check is a lookup
    assert not gate.check(_basic("prometheus", "wrong")["Authorization"])
    assert not gate.check(_basic("prometheus", "right ")["Authorization"])
    assert not gate.check(_basic("nobody", "right")["Authorization"])
    short = BasicAuthGate({"prometheus": _hash("right")}, remember_s=0.0)
    assert short.check(header) and short.check(header)  # checked again by bcrypt once forgotten


def test_one_password_check_at_a_time_so_a_flood_of_guesses_costs_one_core() -> None:
    gate = BasicAuthGate({"prometheus": _hash("right", rounds=13)})  # ~0.5 s a check
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def guess(password: str) -> None:
        start.wait()
        try:
            outcomes.append(str(gate.check(_basic("prometheus", password)["Authorization"])))
        except Overloaded:
            outcomes.append("busy")

    threads = [threading.Thread(target=guess, args=(p,)) for p in ("wrong", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) in (["False", "busy"], ["True", "busy"]), outcomes
    assert gate.check(_basic("prometheus", "right")["Authorization"])  # once free, checked as usual
