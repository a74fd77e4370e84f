"""The web configuration file of Prometheus' exporters (exporter-toolkit's ``--web.config.file``) for
``vigil serve``: TLS, and HTTP basic auth in front of every endpoint but the probes.

```yaml
tls_server_config:
  cert_file: cert.pem                 # relative paths: from this file's directory
  key_file: key.pem
  client_ca_file: ca.pem              # with client_auth_type: RequireAndVerifyClientCert
  client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (the default)
basic_auth_users:
  prometheus: $2y$10$...              # bcrypt hashes, as exporter-toolkit takes them
```

Only what Vigil implements is accepted: any other key (``min_version``, ``http_server_config``, ...)
is an error naming it and the file, so a setting copied from an exporter's file is never silently
ignored. TLS is gunicorn's (:func:`WebConfig.gunicorn_options`); basic auth is a ``before_request``
hook (:class:`BasicAuthGate`). Bearer-token roles (:mod:`vigil.server.auth`) apply on top of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Literal, Self

import bcrypt
import yaml
from flask import Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from vigil.errors import ConfigError, Overloaded, Unauthorized

# bcrypt's modular crypt format: $2a$, $2b$ or $2y$ (htpasswd -B), a cost of 04-31, 22 characters
# of salt and 31 of hash.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
# bcrypt reads at most 72 bytes; the bcrypt package refuses longer passwords instead of truncating.
_BCRYPT_MAX_PASSWORD = 72
# Probes stay open: a kubelet's or a load balancer's health check carries no credentials, and the
# answers reveal nothing an attacker could use. The chat endpoints authenticate every request
# themselves (the webhook token, Slack's request signature), and Slack cannot send basic auth.
OPEN_ENDPOINTS = frozenset({"health.livez", "health.readyz", "chatops.alertmanager_webhook", "chatops.slack_command"})
HINT = "see docs/security.md, Transport: TLS and basic auth"


class TLSServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: str
    key_file: str
    client_ca_file: str = ""
    client_auth_type: Literal["NoClientCert", "RequireAndVerifyClientCert"] = "NoClientCert"

    @field_validator("cert_file", "key_file", "client_ca_file")
    @classmethod
    def _existing_file(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            return value
        # As exporter-toolkit does: relative to the web config's directory, not to the working one.
        path = info.context["directory"] / value
        if not path.is_file():
            raise ValueError(f"{path} does not exist")
        return str(path)

    @model_validator(mode="after")
    def _usable(self) -> Self:
        if self.client_auth_type == "RequireAndVerifyClientCert" and not self.client_ca_file:
            raise ValueError("client_auth_type RequireAndVerifyClientCert needs client_ca_file (the clients' CA)")
        if self.client_ca_file and self.client_auth_type == "NoClientCert":
            # exporter-toolkit refuses this too: a CA that verifies nothing suggests a forgotten line.
            raise ValueError("client_ca_file is set but client_auth_type is NoClientCert")
        # Loaded now, so a key that does not fit its certificate or a PEM typo stops `vigil serve`
        # with this message instead of failing every TLS handshake in the worker.
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"cert_file {self.cert_file} with key_file {self.key_file} cannot be loaded: {exc}"
            ) from None
        if self.client_ca_file:
            try:
                context.load_verify_locations(self.client_ca_file)
            except (ssl.SSLError, OSError) as exc:
                raise ValueError(f"client_ca_file {self.client_ca_file} cannot be loaded: {exc}") from None
        return self


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tls_server_config: TLSServerConfig | None = None
    basic_auth_users: dict[str, str] = Field(default_factory=dict, repr=False)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not user or ":" in user:
                raise ValueError(f"user name {user!r}: basic auth cannot carry an empty name or a colon")
            if not _BCRYPT_HASH.fullmatch(hashed):
                # The value is not echoed: it may be a plain password put there by mistake.
                raise ValueError(f"the password of {user!r} is not a bcrypt hash (make one with htpasswd -nBC 10 user)")
        return users

    def gunicorn_options(self) -> dict[str, Any]:
        """gunicorn's TLS settings; without TLS, gunicorn's own defaults (plain HTTP)."""
        tls = self.tls_server_config
        if tls is None:
            return {"certfile": None, "keyfile": None, "ca_certs": None, "cert_reqs": ssl.CERT_NONE}
        verify = tls.client_auth_type == "RequireAndVerifyClientCert"
        return {
            "certfile": tls.cert_file,
            "keyfile": tls.key_file,
            "ca_certs": tls.client_ca_file or None,
            "cert_reqs": ssl.CERT_REQUIRED if verify else ssl.CERT_NONE,
        }


def load_web_config(path: str) -> WebConfig:
    """``serving.web_config_file`` read and checked; an empty path is the empty configuration (plain
    HTTP, no basic auth). Every problem is one :class:`ConfigError` naming the file and the key."""
    if not path:
        return WebConfig()
    # absolute(), not resolve(): a Kubernetes secret's files are symlinks into a hidden folder, and
    # relative paths are meant from where the file is mounted.
    file = Path(path).expanduser().absolute()
    try:
        data = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise ConfigError(
            f"web config {file} cannot be read: {exc.strerror}", hint="fix serving.web_config_file"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"web config {file} is not valid YAML{where}", hint="fix the syntax") from None
    if data is None:
        return WebConfig()
    if not isinstance(data, dict):
        raise ConfigError(f"web config {file} must hold a mapping, not {type(data).__name__}", hint=HINT)
    try:
        return WebConfig.model_validate(data, context={"directory": file.parent})
    except ValidationError as exc:
        reasons = "; ".join(_reason(err) for err in exc.errors())
        raise ConfigError(f"web config {file}: {reasons}", hint=HINT) from None


def _reason(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown key {where}"
    message = str(err["ctx"]["error"]) if err["type"] == "value_error" else err["msg"]
    return f"{where}: {message}" if where else message


class BasicAuthRequired(Unauthorized):
    """401 from the basic auth gate; answered with a ``Basic`` challenge, not a ``Bearer`` one."""


def basic_auth_challenge(exc: BasicAuthRequired) -> tuple[Response, int]:
    resp = jsonify(error=str(exc))
    resp.headers["WWW-Authenticate"] = 'Basic realm="vigil"'
    return resp, exc.http_status


class BasicAuthGate:
    """HTTP basic auth against ``basic_auth_users``' bcrypt hashes.

    bcrypt costs 50-250 ms on purpose, and Prometheus' remote_write sends many requests a second
    with the same credentials: a success is remembered for ``remember_s``, keyed by the SHA-256 of
    ``user:password``, so the cache holds no password. Failures are not remembered: each costs a
    guesser a full bcrypt check, and one check runs at a time: a flood of wrong passwords costs at
    most one core, and while a check runs, credentials not yet remembered are answered 503 with
    ``Retry-After`` (Prometheus retries it) instead of queueing behind it. Nothing here logs credentials.
    """

    def __init__(self, users: dict[str, str], *, remember_s: float = 300.0, max_remembered: int = 1024) -> None:
        self._users = {user.encode(): hashed.encode() for user, hashed in users.items()}
        # An unknown user is checked against a real hash too, and the answer thrown away: it then
        # takes as long as a wrong password, so timing does not reveal which user names exist.
        self._decoy = next(iter(self._users.values()))
        self._remember_s = remember_s
        self._max_remembered = max_remembered
        self._remembered: dict[bytes, float] = {}
        self._lock = threading.Lock()
        self._checking = threading.Lock()

    def check(self, header: str) -> bool:
        """Whether an ``Authorization`` header carries the credentials of one user."""
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(given.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, colon, password = decoded.partition(b":")
        if not colon or len(password) > _BCRYPT_MAX_PASSWORD:
            return False
        # User names hold no colon (RFC 7617), so user:password names one pair unambiguously.
        key = hashlib.sha256(decoded).digest()
        now = time.monotonic()
        with self._lock:
            if self._remembered.get(key, 0.0) > now:
                return True
        hashed = self._users.get(user)
        if not self._checking.acquire(blocking=False):
            raise Overloaded(
                "another password check is running; retry in a second", hint="credentials are remembered once checked"
            )
        try:
            matched = bcrypt.checkpw(password, hashed or self._decoy)
        finally:
            self._checking.release()
        if not (matched and hashed is not None):
            return False
        with self._lock:
            if len(self._remembered) >= self._max_remembered:
                self._remembered = {k: until for k, until in self._remembered.items() if until > now}
                if len(self._remembered) >= self._max_remembered:
                    self._remembered.clear()
            self._remembered[key] = now + self._remember_s
        return True

    def before_request(self) -> None:
        """Flask hook: refuse the request unless it is a probe or carries valid credentials."""
        if request.endpoint in OPEN_ENDPOINTS:
            return
        if not self.check(request.headers.get("Authorization", "")):
            raise BasicAuthRequired(
                "valid basic auth credentials are required", hint="send a user and password of basic_auth_users"
            )
