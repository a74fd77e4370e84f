"""One settings model for all of Vigil.

Precedence (highest first): keyword overrides, ``VIGIL_*`` environment variables (nested with ``__``,
e.g. ``VIGIL_PORTS__PROMETHEUS=29090``), the YAML file (``VIGIL_CONFIG`` or ``$VIGIL_HOME/vigil.yml``),
defaults. Default ports sit in the 19xxx range so they never clash with a real installation's
standard ports (9090, 9093, 9100, ...).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from vigil.errors import ConfigError

_REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = _REPO_ROOT / "deploy"  # the templates, rule files and mtail programs that ship with Vigil


def _default_data_dir() -> Path:
    return (_REPO_ROOT.parent / "shared" / "data").resolve()


class Ports(BaseModel):
    prometheus: int = 19090
    node_exporter: int = 19100
    alertmanager: int = 19093
    mtail: int = 19903
    demo_app: int = 19080
    vigil: int = 19000
    collector: int = 19001
    victoria_metrics: int = 19428
    loadgen: int = 19081
    trainer: int = 19002


class DemoSettings(BaseModel):
    """The watched demo service and its load generator (``vigil up`` runs both)."""

    db_path: str = ""  # empty: $VIGIL_HOME/demo/orders.db; pointing it elsewhere is how DB faults are injected
    downstream_url: str = ""  # optional dependency GET /api/inventory calls; empty: none
    base_rps: float = 4.0  # mean request rate; the trace scales it (nyc_taxi peaks at ~2.6x its mean)
    day_s: float = 240.0  # wall-clock seconds per replayed trace day
    trace_start: str = ""  # trace timestamp to start from, e.g. "2014-11-01"; empty: the first row


def secret_from_file(value: str, path: str, name: str) -> str:
    """A secret given inline, else read from ``path`` (a mounted secret, a 0600 file): ``<name>_file``."""
    if value or not path:
        return value
    try:
        text = Path(path).expanduser().read_text().strip()
    except OSError as exc:
        raise ValueError(f"{name}_file {path} cannot be read: {exc.strerror}") from None
    if not text:
        raise ValueError(f"{name}_file {path} is empty")
    return text


class LLMSettings(BaseModel):
    """Any OpenAI-compatible endpoint; empty ``base_url`` means the deterministic explainer only."""

    base_url: str = ""
    model: str = ""
    api_key: str = Field(default="", repr=False)
    api_key_file: str = ""
    timeout_s: float = 20.0
    max_tokens: int = 400
    retries: int = 1

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        self.api_key = secret_from_file(self.api_key, self.api_key_file, "llm.api_key")
        return self


class ServingSettings(BaseModel):
    """`vigil serve`: one gunicorn worker with threads, because the streaming state lives in-process."""

    threads: int = 8
    max_body_bytes: int = 4 * 1024 * 1024  # compressed remote_write body or predict JSON
    max_decompressed_bytes: int = 32 * 1024 * 1024
    max_predict_rows: int = 10_000
    entity_label: str = "instance"  # the label that names an entity (one stream each)
    max_entities: int = 2_000
    max_series_per_entity: int = 2_000  # raw series of one entity (catalog signals); dead ones free their place
    # Samples stamped further back or ahead of the receiver's clock are dropped (counted per reason);
    # a detection snapshot older than max_sample_age_s is not resumed.
    max_sample_age_s: float = Field(default=3 * 3600.0, gt=0)  # Prometheus' WAL backlog after a Vigil outage
    max_sample_ahead_s: float = Field(default=300.0, gt=0)
    entity_idle_s: float = Field(default=3600.0, gt=0)  # an entity without data this long is forgotten
    step_s: float = 0.0  # 0: scrape_interval_s
    max_lag_steps: int = 5  # an incomplete step is scored once a step this much newer arrives (shard skew)
    step_grace_s: float = 0.0  # ... or once it is this old by the wall clock (0: 2 x step)
    snapshot_interval_s: float = 30.0
    model_poll_s: float = 5.0
    alert_resend_s: float = 60.0
    data_timeout_s: float = 0.0  # /readyz fails after this long without data (0: max(30, 10 x step))
    ingest_mode: str = "remote_write"  # or "poll": PromQL polling when remote_write cannot be configured
    fast_path: bool = True
    # Incidents (vigil.detection.incidents): a related entity's alarm joins an incident that started at
    # most incident_join_s before it; an incident resolves once quiet for incident_resolve_s.
    incident_join_s: float = Field(default=15.0, ge=0)
    incident_resolve_s: float = Field(default=20.0, ge=0)
    # exporter-toolkit's web config (TLS, basic auth), read by vigil.server.webconfig; empty: plain HTTP.
    web_config_file: str = ""


class AlertingSettings(BaseModel):
    """Anomalies pushed to Alertmanager (API v2), see :mod:`vigil.alerting`; re-post: serving.alert_resend_s."""

    alert_ttl_s: float = 240.0  # endsAt this far ahead, so alerts expire by themselves if Vigil dies
    max_pending: int = 10_000
    detector_label: str = "ensemble"
    ui_url: str = ""  # base of the alert's link annotation; empty: a Prometheus graph link


class ChatOpsSettings(BaseModel):
    """Evidence gathering and chat surfaces, see :mod:`vigil.chatops`; entities: serving.entity_label."""

    contribution_metric: str = "vigil_anomaly_top_metric"  # {entity, metric} -> share, from /metrics
    service_latency_query: str = (
        "histogram_quantile(0.99, sum by (le) (rate(demo_log_request_duration_seconds_bucket[1m])))"
    )
    service_error_query: str = "sum(rate(demo_log_server_errors_total[1m])) / sum(rate(demo_log_requests_total[1m]))"
    public_prometheus_url: str = ""  # links posted to chat; empty: prometheus_url
    runbooks_dir: str = ""  # empty: docs/runbooks of this checkout
    slack_max_age_s: float = 300.0
    # Bearer token POST /v1/alertmanager requires; empty: generated into $VIGIL_HOME/webhook_token,
    # which the rendered Alertmanager configuration names as its credentials_file.
    webhook_token: str = Field(default="", repr=False)
    webhook_token_file: str = ""
    # Alerts the webhook handles a minute (each may gather evidence and ask an LLM); past it, 503 and
    # Retry-After, which Alertmanager retries.
    webhook_alerts_per_minute: int = Field(default=600, ge=1)

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        self.webhook_token = secret_from_file(self.webhook_token, self.webhook_token_file, "chatops.webhook_token")
        return self


class SignalRule(BaseModel):
    """Practical significance of one signal (see vigil.detectors.significance); unset fields keep
    the catalogue's default. ``min`` is in the signal's own units, ``ratio`` relative to its usual level."""

    model_config = ConfigDict(extra="forbid")

    direction: Literal["up", "down", "both"] | None = None
    min: float | None = Field(default=None, ge=0)
    ratio: float | None = Field(default=None, ge=0)
    range: bool | None = None  # whether leaving the training range by more than ``min`` alone alarms
    sustained: bool | None = None  # the same, judged on the median over ``sustained_window`` steps
    window_s: float | None = Field(default=None, ge=0)  # how long a deviation must hold to count
    # With window_s: it counts only while the recent median shows it too, so it ends once the level is back.
    recent_too: bool | None = None
    # With window_s: a level that two steps of the window reach counts though the median stays below it.
    repeated_level: float | None = Field(default=None, ge=0)


class EntitySettings(BaseModel):
    """Per-entity settings, keyed by the entity's name (e.g. ``127.0.0.1:19100`` or ``demo``): signal
    overrides, and for a service its place in the topology (vigil.detection.incidents) and the client
    metrics that measure its calls to its dependencies (vigil.chatops.explain)."""

    model_config = ConfigDict(extra="forbid")

    signals: dict[str, SignalRule] = Field(default_factory=dict)
    host: str = ""  # the host it runs on, as that host's instance label names it (its host part suffices)
    # What it calls: "network" when reached over a link (loss or delay slows and times out the calls),
    # "local" when on its own machine (a database file).
    depends_on: dict[str, Literal["network", "local"]] = Field(default_factory=dict)
    # Its calls to them: a histogram and a failures counter with an `error` label, both labelled `dependency`.
    dependency_duration_metric: str = ""
    dependency_failures_metric: str = ""

    @model_validator(mode="after")
    def _measured(self) -> Self:
        if self.depends_on and not (self.dependency_duration_metric and self.dependency_failures_metric):
            raise ValueError("depends_on needs dependency_duration_metric and dependency_failures_metric")
        return self


class MaintenanceWindow(BaseModel):
    """Declared maintenance (a deploy, a reboot, a migration): while it lasts, its entities' alarms
    page nobody and open no incident, and the retrainer learns nothing from it, since what a host does
    under maintenance is not its normal behaviour. Times in ISO 8601 with a timezone."""

    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime
    entities: list[str] = Field(default_factory=list)  # empty: every entity
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("maintenance start and end need a timezone (e.g. 2026-12-08T02:00:00Z)")
        if self.end <= self.start:
            raise ValueError("maintenance must end after it starts")
        return self

    def applies_to(self, entity: str) -> bool:
        return not self.entities or entity in self.entities

    def covers(self, entity: str, t: float) -> bool:
        """Whether ``entity`` is under this maintenance at unix time ``t``."""
        return self.applies_to(entity) and self.start.timestamp() <= t < self.end.timestamp()


def _local_stack_entities() -> dict[str, EntitySettings]:
    """The local stack's demo service: on this machine, calling its inventory service over the
    validation network's link and its SQLite file."""
    return {
        "demo": EntitySettings(
            host="127.0.0.1",
            depends_on={"inventory": "network", "database": "local"},
            dependency_duration_metric="demo_dependency_duration_seconds",
            dependency_failures_metric="demo_dependency_failures_total",
        )
    }


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIL_", env_nested_delimiter="__", extra="forbid")

    home: Path = Field(default_factory=lambda: Path(os.environ.get("VIGIL_HOME", "~/.vigil")).expanduser())
    data_dir: Path = Field(default_factory=_default_data_dir)
    deploy_dir: Path = DEPLOY_DIR  # where the stack renders its configuration from (a copy to edit)
    bind_host: str = "127.0.0.1"
    ports: Ports = Field(default_factory=Ports)
    scrape_interval_s: float = 1.0
    evaluation_interval_s: float = 1.0
    prometheus_url: str = ""  # empty: the local stack's Prometheus
    alertmanager_url: str = ""  # empty: the local stack's Alertmanager
    collect_interval_s: float = 15.0
    collect_chunk_s: float = 600.0
    collect_match: str = '{__name__=~".+"}'  # PromQL selector of the series `vigil collect` archives
    collect_step_s: float = 0.0  # 0: scrape_interval_s
    collect_lag_s: float = 5.0  # stay this far behind now, so Prometheus has ingested the last scrape
    collect_backfill_s: float = 3600.0  # how far back an empty archive starts
    archive_retention_days: float = 90.0
    retrain_interval_s: float = 300.0
    retrain_window_s: float = 6 * 3600.0  # sliding window the scheduled retrain learns from
    mlflow_tracking_uri: str = ""  # empty: embedded SQLite store + artifacts under $VIGIL_HOME/mlflow
    drift_window: int = 1440  # steps per drift window (one day at 1-minute steps)
    drift_check_interval_s: float = 60.0  # how often the stack's trainer compares champions with recent data
    drift_check_window_s: float = 300.0  # the recent stretch of the archive it compares
    serving_model: str = ""  # registered model `vigil serve` follows; empty: the only (or first) one
    # Secrets: each can come from a file instead (``<name>_file``), and none shows in a repr or a log.
    api_token: str = Field(default="", repr=False)  # mutating endpoints; empty: generated in $VIGIL_HOME/api_token
    api_token_file: str = ""
    api_read_token: str = Field(default="", repr=False)  # read endpoints; empty: they need no token
    api_read_token_file: str = ""
    slack_signing_secret: str = Field(default="", repr=False)
    slack_signing_secret_file: str = ""
    apprise_urls: list[str] = Field(default_factory=list, repr=False)  # their URLs carry tokens
    llm: LLMSettings = Field(default_factory=LLMSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    chatops: ChatOpsSettings = Field(default_factory=ChatOpsSettings)
    signals: dict[str, SignalRule] = Field(default_factory=dict)  # practical significance overrides
    entities: dict[str, EntitySettings] = Field(default_factory=_local_stack_entities)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        self.api_token = secret_from_file(self.api_token, self.api_token_file, "api_token")
        self.api_read_token = secret_from_file(self.api_read_token, self.api_read_token_file, "api_read_token")
        self.slack_signing_secret = secret_from_file(
            self.slack_signing_secret, self.slack_signing_secret_file, "slack_signing_secret"
        )
        return self

    def in_maintenance(self, entity: str, t: float) -> bool:
        return any(w.covers(entity, t) for w in self.maintenance)

    def signal_rules(self, entity: str) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """(global, per-entity) practical-significance overrides as plain dicts, unset fields left out."""
        glob = {k: v.model_dump(exclude_none=True) for k, v in self.signals.items()}
        ent = self.entities.get(entity)
        local = {k: v.model_dump(exclude_none=True) for k, v in ent.signals.items()} if ent else {}
        return glob, local

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    # Derived locations inside the one state directory.
    @property
    def archive_dir(self) -> Path:
        return self.home / "archive"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def demo_access_log(self) -> Path:
        return self.logs_dir / "demo_app.access.log"

    @property
    def demo_db_path(self) -> Path:
        return Path(self.demo.db_path).expanduser() if self.demo.db_path else self.home / "demo" / "orders.db"

    def url(self, component: str) -> str:
        return f"http://{self.bind_host}:{getattr(self.ports, component)}"

    @property
    def effective_prometheus_url(self) -> str:
        return self.prometheus_url or self.url("prometheus")

    @property
    def effective_alertmanager_url(self) -> str:
        return self.alertmanager_url or self.url("alertmanager")


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return read_yaml_config(config_path())


def config_path() -> Path:
    explicit = os.environ.get("VIGIL_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("VIGIL_HOME", "~/.vigil")).expanduser() / "vigil.yml"


def read_yaml_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        if os.environ.get("VIGIL_CONFIG"):
            raise ConfigError(f"config file {path} does not exist", hint="fix VIGIL_CONFIG or create the file")
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}", hint="fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, not {type(data).__name__}")
    return data


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as ``VIGIL_*`` variables: nested models as ``VIGIL_<MODEL>__<FIELD>``, lists and
    mappings as JSON, secrets resolved."""
    out: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if isinstance(getattr(settings, name), BaseModel):
            for sub, subvalue in value.items():
                if subvalue is not None:
                    out[f"VIGIL_{name.upper()}__{sub.upper()}"] = _env_value(subvalue)
        elif value is not None:
            out[f"VIGIL_{name.upper()}"] = _env_value(value)
    return out


def settings_overrides(settings: Settings) -> dict[str, str]:
    """The ``VIGIL_*`` variables a child process needs to load ``settings`` rather than what the
    environment and ``vigil.yml`` give on their own: only the values the caller changed (a campaign's
    wiring, a test's ports). Environment variables outrank the file, so those win in the child,
    and everything else still comes from the file as it is when the child starts."""
    plain = settings_env(load_settings())
    return {k: v for k, v in settings_env(settings).items() if plain.get(k) != v}


def _env_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def load_settings(**overrides: Any) -> Settings:
    """Load settings; any validation problem becomes one readable :class:`ConfigError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(
            f"invalid setting {where}: {first['msg']}", hint=f"check {config_path()} and VIGIL_* variables"
        ) from None
