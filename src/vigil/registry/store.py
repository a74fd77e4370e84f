"""The model registry: MLflow tracking + model registry, embedded by default.

By default the store is a SQLite database and an artifact folder under ``$VIGIL_HOME/mlflow``,
so no server runs; ``settings.mlflow_tracking_uri`` points it at a remote MLflow instead. Each
entity (host, instance, watched service) is one registered model; every training run registers
one version whose artifact is a verified :mod:`vigil.registry.bundle`.

Aliases: ``champion`` is what serving loads, ``challenger`` the latest candidate. Promotion and
rollback are each one alias write (a single row in the registry's database), so a reader sees the
old champion or the new one, never neither. A version is fetched and verified before the alias
moves: a corrupted artifact cannot become champion, and the current champion stays.

Serving never writes. It calls :meth:`ModelRegistry.champion_version` (one indexed query) to poll
and :meth:`ModelRegistry.champion` to get a verified local copy, or uses :class:`ChampionWatcher`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from vigil.config import Settings, load_settings
from vigil.contracts import ScoringModel
from vigil.errors import ConfigError, ModelError, NotFound
from vigil.jsonsafe import json_safe
from vigil.registry.bundle import copy_tree_atomic, load_bundle, read_json, verify_bundle, write_bundle
from vigil.statefile import READ, REFUSE, FormatCheck

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
EXPERIMENT = "vigil"
TAG_MANAGED = "vigil.managed"
TAG_ENTITY = "vigil.entity"
TAG_MANIFEST = "vigil.manifest_sha256"
TAG_DATA_HASH = "vigil.data_hash"
TAG_HISTORY = "vigil.champion_history"
# Whether an entity's served model may page: "paging" (default) or "shadow" (scored and exported,
# never sent to Alertmanager or chat). A tag on the registered model, so every serving replica
# reads the same answer.
TAG_MODE = "vigil.mode"
MODES = ("paging", "shadow")
BUNDLE_DIR = "bundle"


def disable_telemetry() -> None:
    """A monitoring system must not call home: switch off MLflow's telemetry before it is imported."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    # The embedded store is local; MLflow's artifact progress bars would only clutter `vigil train`.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


disable_telemetry()


def model_name(entity: str) -> str:
    """Registered-model name for an entity: label values may hold ``:`` or ``/``, MLflow names may not."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", entity).strip("_.")
    if not name:
        raise ModelError(f"cannot derive a model name from entity {entity!r}")
    return name


@dataclass(frozen=True)
class ChampionEntry:
    version: str | None  # None: the model has no champion
    mode: str
    created: int  # the registered model's creation time: a name deleted and registered again restarts at 1


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: str
    entity: str
    run_id: str
    created_at: float  # unix seconds
    aliases: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    data_hash: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        return data


@dataclass(frozen=True)
class AliasMove:
    name: str
    alias: str
    previous: str | None
    current: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelRegistry:
    """Vigil's view of the MLflow registry.

    Parameters
    ----------
    settings : Vigil settings; ``home`` (embedded store) and ``mlflow_tracking_uri`` are used.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        if self.settings.mlflow_tracking_uri:
            self.tracking_uri = self.settings.mlflow_tracking_uri
            self.artifact_location: str | None = None
        else:
            store = self.settings.mlflow_dir
            store.mkdir(parents=True, exist_ok=True)
            self.tracking_uri = f"sqlite:///{store / 'mlflow.db'}"
            self.artifact_location = (store / "artifacts").as_uri()
        # Not $VIGIL_HOME/models: that folder is the file-based model source of `vigil serve`,
        # which would take every cached registry version for a model of its own.
        self.cache_dir = self.settings.mlflow_dir / "cache"
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def client(self) -> MlflowClient:
        with self._lock:
            if self._client is None:
                from mlflow import MlflowClient

                disable_telemetry()  # again: importing mlflow resets its loggers' levels
                if self.artifact_location is None:
                    self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
                else:
                    self._client = _open_embedded_store(self.tracking_uri, self.settings.mlflow_dir)
            return self._client

    def _experiment(self) -> str:
        if self._experiment_id is None:
            exp = self.client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                from mlflow.exceptions import MlflowException

                try:
                    self._experiment_id = self.client.create_experiment(
                        EXPERIMENT, artifact_location=self.artifact_location
                    )
                except MlflowException:  # created concurrently by another process
                    exp = self.client.get_experiment_by_name(EXPERIMENT)
                    if exp is None:
                        raise
                    self._experiment_id = exp.experiment_id
            else:
                self._experiment_id = exp.experiment_id
        return self._experiment_id

    # -- writing ----------------------------------------------------------------------------
    def log_model(
        self,
        entity: str,
        model: ScoringModel,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        fold_metrics: list[Mapping[str, float]] | None = None,
        drift_reference: Mapping[str, Any] | None = None,
        training: Mapping[str, Any] | None = None,
        data_hash: str = "",
        run_name: str | None = None,
        golden: pd.DataFrame | None = None,
    ) -> ModelVersionInfo:
        """Log one training run and register its bundle as a new version of ``entity``'s model.

        On any failure the run is deleted and no version is created: a half-logged model is
        never registered.
        """
        from mlflow.entities import Metric, Param, RunTag

        name = model_name(entity)
        params = {k: str(v) for k, v in (params or {}).items()}
        metrics = {k: float(v) for k, v in (metrics or {}).items()}
        card = _model_card(model)
        run = self.client.create_run(
            self._experiment(),
            run_name=run_name or f"{name}-{time.strftime('%Y%m%dT%H%M%S')}",
            tags={TAG_MANAGED: "true", TAG_ENTITY: entity, TAG_DATA_HASH: data_hash},
        )
        run_id = run.info.run_id
        try:
            now_ms = int(time.time() * 1000)
            mlflow_metrics = [Metric(k, v, now_ms, 0) for k, v in metrics.items() if math.isfinite(v)]
            for i, fold in enumerate(fold_metrics or []):
                mlflow_metrics += [
                    Metric(f"fold_{k}", float(v), now_ms, i) for k, v in fold.items() if math.isfinite(v)
                ]
            card_params = {
                "n_features": str(len(card.get("features", card.get("feature_names", [])) or [])),
                "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            }
            all_params = {**card_params, **params}
            # MLflow caps a param value at 6000 characters; long lists live in card.json instead.
            self.client.log_batch(
                run_id,
                metrics=mlflow_metrics,
                params=[Param(k, v[:6000]) for k, v in all_params.items()],
                tags=[RunTag("vigil.metrics", json.dumps(json_safe(metrics)))],
            )
            with tempfile.TemporaryDirectory(prefix="vigil-bundle-") as tmp:
                bundle = Path(tmp) / BUNDLE_DIR
                manifest_sha = write_bundle(
                    bundle,
                    model,
                    card=card,
                    training={
                        "entity": entity,
                        "params": params,
                        "metrics": metrics,
                        "folds": list(fold_metrics or []),
                        "data_hash": data_hash,
                        **dict(training or {}),
                    },
                    drift_reference=drift_reference,
                    golden=golden,
                )
                verify_bundle(bundle, manifest_sha256=manifest_sha)
                self.client.log_artifacts(run_id, str(bundle), artifact_path=BUNDLE_DIR)
            self._ensure_registered_model(name, entity)
            mv = self.client.create_model_version(
                name,
                source=f"{run.info.artifact_uri}/{BUNDLE_DIR}",
                run_id=run_id,
                tags={TAG_MANIFEST: manifest_sha, TAG_DATA_HASH: data_hash, TAG_ENTITY: entity},
            )
            self.client.set_terminated(run_id, "FINISHED")
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            self.client.delete_run(run_id)
            raise
        return self.get(name, mv.version)

    def _ensure_registered_model(self, name: str, entity: str, tags: Mapping[str, str] | None = None) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            try:
                self.client.create_registered_model(
                    name, tags={**(tags or {}), TAG_MANAGED: "true", TAG_ENTITY: entity}
                )
            except MlflowException:  # lost a race with a concurrent training run
                self.client.get_registered_model(name)

    def promote(self, name: str, version: str | int, alias: str = CHAMPION) -> AliasMove:
        """Point ``alias`` at ``version`` after verifying and test-loading it; one atomic alias write."""
        name, version = self._resolve_name(name), str(version)
        # NotFound for unknown versions; ModelError for corrupt bytes or a model that no longer
        # scores its golden rows. Either way the alias stays where it was.
        self.load(name, version)
        previous = self._alias_version(name, alias)
        if previous == version:
            return AliasMove(name, alias, previous, version)
        self.client.set_registered_model_alias(name, alias, version)
        if alias == CHAMPION:
            history = self.champion_history(name)
            if not history or history[-1] != previous:
                history += [previous] if previous else []
            self._write_history(name, [*history, version])
        log.info("%s: %s %s -> %s", name, alias, previous, version)
        return AliasMove(name, alias, previous, version)

    def copy_champion(
        self, name: str, entity: str, *, mode: str = "paging", tags: Mapping[str, str] | None = None
    ) -> str:
        """Serve ``name``'s champion for ``entity`` as well: the new entity's model gets a version that
        points at the same verified bundle (nothing is copied), as its champion; returns its name."""
        src = self.get(name)
        target = model_name(entity)
        self._ensure_registered_model(target, entity, tags)
        mv = self.client.create_model_version(
            target,
            source=src.source,
            run_id=src.run_id or None,
            tags={
                TAG_MANIFEST: self._manifest_sha(src.name, src.version) or "",
                TAG_DATA_HASH: src.data_hash,
                TAG_ENTITY: entity,
            },
        )
        self.set_mode(target, mode)
        self.promote(target, mv.version)
        return target

    def delete(self, name: str) -> None:
        """Remove a model, every version of it and its cached bundles (serving retires its engine at
        the next poll)."""
        name = self._resolve_name(name)
        self.client.delete_registered_model(name)
        shutil.rmtree(self.cache_dir / name, ignore_errors=True)

    def set_challenger(self, name: str, version: str | int) -> AliasMove:
        return self.promote(name, version, alias=CHALLENGER)

    def rollback(self, name: str) -> AliasMove:
        """Move ``champion`` back to the version it pointed at before the current one."""
        name = self._resolve_name(name)
        current = self._alias_version(name, CHAMPION)
        if current is None:
            raise NotFound(f"model {name} has no champion to roll back", hint=f"vigil models promote {name} VERSION")
        history = self.champion_history(name)
        if history and history[-1] == current:
            history = history[:-1]
        while history:
            target = history[-1]
            try:
                self.load(name, target)
            except (ModelError, NotFound) as exc:
                log.warning("%s: skipping version %s on rollback: %s", name, target, exc)
                history = history[:-1]
                continue
            self.client.set_registered_model_alias(name, CHAMPION, target)
            self._write_history(name, history)
            return AliasMove(name, CHAMPION, current, target)
        raise NotFound(f"model {name} has no earlier champion to roll back to")

    def mode(self, name: str) -> str:
        """``paging`` or ``shadow`` (see :data:`TAG_MODE`)."""
        tags = self.client.get_registered_model(self._resolve_name(name)).tags
        mode = tags.get(TAG_MODE, "paging")
        return mode if mode in MODES else "paging"

    def set_mode(self, name: str, mode: str) -> str:
        """Let the entity's model page, or keep it in shadow; returns the previous mode."""
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        name = self._resolve_name(name)
        previous = self.mode(name)
        self.client.set_registered_model_tag(name, TAG_MODE, mode)
        log.info("%s: %s -> %s", name, previous, mode)
        return previous

    def champion_history(self, name: str) -> list[str]:
        """Versions that held ``champion``, oldest first (the last one is the current champion)."""
        tags = self.client.get_registered_model(self._resolve_name(name)).tags
        try:
            return [str(v) for v in json.loads(tags.get(TAG_HISTORY, "[]"))]
        except ValueError:
            return []

    def _write_history(self, name: str, history: list[str]) -> None:
        # Tags hold at most 8000 characters; the last 200 moves are plenty to roll back through.
        self.client.set_registered_model_tag(name, TAG_HISTORY, json.dumps(history[-200:]))

    # -- reading ----------------------------------------------------------------------------
    def check_store(self) -> FormatCheck:
        """What this version does with the registry's store (``vigil upgrade-check``): MLflow checks its
        database schema when it opens it, and refuses one of another schema version."""
        where = Path(self.tracking_uri.removeprefix("sqlite:///")) if self.tracking_uri.startswith("sqlite:") else None
        try:
            n = len(self._managed_models())
        except Exception as exc:  # noqa: BLE001 - MLflow raises its own exception types for a bad store
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            upgrade = f" Back it up (vigil backup), then run: mlflow db upgrade {self.tracking_uri}"
            hint = upgrade if "schema" in text else ""
            return FormatCheck("model registry", where or Path(self.tracking_uri), "other", REFUSE, text + hint)
        return FormatCheck("model registry", where or Path(self.tracking_uri), "current", READ, f"{n} models")

    def entities(self) -> list[str]:
        """Registered model names managed by Vigil."""
        return sorted(m.name for m in self._managed_models())

    def champions(self) -> dict[str, ChampionEntry]:
        """Every Vigil model's champion version and mode, from one registry query (what serving polls)."""
        out = {}
        for m in self._managed_models():
            version = m.aliases.get(CHAMPION)
            mode = m.tags.get(TAG_MODE, "paging")
            out[m.name] = ChampionEntry(
                version=None if version is None else str(version),
                mode=mode if mode in MODES else "paging",
                created=int(m.creation_timestamp or 0),
            )
        return out

    def _managed_models(self) -> list[Any]:
        # A search returns 100 models a page by default; a fleet has more.
        models: list[Any] = []
        token = None
        while True:
            page = self.client.search_registered_models(
                filter_string=f"tags.`{TAG_MANAGED}` = 'true'", max_results=1000, page_token=token
            )
            models.extend(page)
            token = page.token
            if not token:
                return models

    def list_versions(self, name: str | None = None) -> list[ModelVersionInfo]:
        names = [self._resolve_name(name)] if name else self.entities()
        out: list[ModelVersionInfo] = []
        for n in names:
            versions = self.client.search_model_versions(f"name = '{_quote(n)}'")
            # Searches do not fill in aliases on every backend; the registered model always has them.
            by_version: dict[str, list[str]] = {}
            for alias, v in self.aliases(n).items():
                by_version.setdefault(str(v), []).append(alias)
            for mv in sorted(versions, key=lambda mv: int(mv.version)):
                info = self._info(mv)
                out.append(replace(info, aliases=tuple(sorted(by_version.get(info.version, [])))))
        return out

    def get(self, name: str, ref: str | int = CHAMPION) -> ModelVersionInfo:
        """One version by number or alias (``champion``, ``challenger``)."""
        from mlflow.exceptions import MlflowException

        name, ref = self._resolve_name(name), str(ref)
        try:
            if ref.isdigit():
                mv = self.client.get_model_version(name, ref)
            else:
                mv = self.client.get_model_version_by_alias(name, ref)
        except MlflowException:
            raise NotFound(f"model {name} has no version or alias {ref!r}", hint="see `vigil models list`") from None
        return self._info(mv)

    def aliases(self, name: str) -> dict[str, str]:
        return {a: str(v) for a, v in self.client.get_registered_model(self._resolve_name(name)).aliases.items()}

    def champion_version(self, name: str) -> str | None:
        """The champion's version number, or None: a single indexed query, cheap enough to poll."""
        return self._alias_version(self._resolve_name(name), CHAMPION)

    def champion(self, name: str) -> tuple[str, Path]:
        """``(version, local bundle path)`` of the current champion, verified byte for byte."""
        name = self._resolve_name(name)
        version = self._alias_version(name, CHAMPION)
        if version is None:
            raise NotFound(
                f"model {name} has no champion", hint=f"run `vigil train` or `vigil models promote {name} N`"
            )
        return version, self.fetch(name, version)

    def load(self, name: str, ref: str | int = CHAMPION) -> tuple[ModelVersionInfo, ScoringModel]:
        """Resolve, fetch, verify and load a version; :class:`ModelError` if it cannot serve."""
        info = self.get(name, ref)
        path = self.fetch(info.name, info.version)
        return info, load_bundle(path, manifest_sha256=self._manifest_sha(info.name, info.version))

    def fetch(self, name: str, version: str | int) -> Path:
        """A verified local copy of a version's bundle under ``$VIGIL_HOME/mlflow/cache/<name>/<version>``.

        The copy is downloaded into a temp folder, verified, then renamed into place, so the cache
        only ever holds complete bundles; a cached copy is re-verified on every call (a few ms).
        """
        name, version = self._resolve_name(name), str(version)
        expected = self._manifest_sha(name, version)
        dest = self.cache_dir / name / version
        if dest.exists():
            try:
                verify_bundle(dest, manifest_sha256=expected)
                return dest
            except ModelError as exc:
                log.warning("%s v%s: cached bundle invalid (%s), fetching again", name, version, exc)
                shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        mv = self.client.get_model_version(name, version)
        with tempfile.TemporaryDirectory(prefix=f".{version}-", dir=dest.parent) as tmp:
            try:
                from mlflow.artifacts import download_artifacts

                local = Path(download_artifacts(artifact_uri=mv.source, dst_path=tmp, tracking_uri=self.tracking_uri))
            except Exception as exc:  # noqa: BLE001 - any transport failure means "not servable"
                raise ModelError(f"model {name} v{version}: cannot download its bundle: {exc}") from exc
            verify_bundle(local, manifest_sha256=expected)
            if not dest.exists():
                copy_tree_atomic(local, dest)
        verify_bundle(dest, manifest_sha256=expected)
        return dest

    def bundle_json(self, name: str, version: str | int, file: str) -> dict[str, Any]:
        """``card.json``, ``training.json`` or ``drift_reference.json`` of a version ({} if absent)."""
        return read_json(self.fetch(name, version), file)

    # -- helpers ----------------------------------------------------------------------------
    def _resolve_name(self, name: str) -> str:
        return model_name(name)

    def _alias_version(self, name: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def _manifest_sha(self, name: str, version: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version(name, version).tags.get(TAG_MANIFEST)
        except MlflowException:
            raise NotFound(f"model {name} has no version {version}", hint="see `vigil models list`") from None

    def _info(self, mv: Any) -> ModelVersionInfo:
        metrics: dict[str, float] = {}
        params: dict[str, str] = {}
        if mv.run_id:
            from mlflow.exceptions import MlflowException

            try:
                run = self.client.get_run(mv.run_id)
                metrics = {k: float(v) for k, v in run.data.metrics.items() if not k.startswith("fold_")}
                params = dict(run.data.params)
            except MlflowException:
                pass
        return ModelVersionInfo(
            name=mv.name,
            version=str(mv.version),
            entity=mv.tags.get(TAG_ENTITY, mv.name),
            run_id=mv.run_id or "",
            created_at=(mv.creation_timestamp or 0) / 1000.0,
            aliases=tuple(sorted(getattr(mv, "aliases", []) or [])),
            metrics=metrics,
            params=params,
            data_hash=mv.tags.get(TAG_DATA_HASH, ""),
            source=mv.source or "",
        )


class ChampionWatcher:
    """Polls one model's ``champion`` alias for a serving process's hot reload.

    ``poll()`` returns ``(version, path)`` when the champion moved to a version that verifies,
    ``None`` when nothing changed. When the new champion's bundle is corrupt it raises
    :class:`ModelError` once for that version (serving logs it and keeps the model it has), then
    returns ``None`` until the alias moves again.
    """

    def __init__(self, registry: ModelRegistry, name: str, current: str | None = None) -> None:
        self.registry = registry
        self.name = model_name(name)
        self.current = current
        self._failed: str | None = None

    def poll(self) -> tuple[str, Path] | None:
        version = self.registry.champion_version(self.name)
        if version is None or version == self.current or version == self._failed:
            return None
        try:
            path = self.registry.fetch(self.name, version)
        except ModelError:
            self._failed = version
            raise
        self.current, self._failed = version, None
        return version, path


def _open_embedded_store(uri: str, store_dir: Path) -> MlflowClient:
    """Open the embedded SQLite store under an inter-process lock.

    MLflow creates and migrates the schema when a process first opens the store (in the client's
    constructor and on the first registry call). `vigil train` and `vigil serve`'s model poller
    can do that at the same moment, and concurrent alembic runs on one new SQLite file fail
    ("table _alembic_tmp_experiments already exists", seen on the live stack; 3 of 4 processes
    started together failed). A file lock serialises the opening; once the schema is in place
    later processes pass through quickly.
    """
    import fcntl

    from mlflow import MlflowClient

    store_dir.mkdir(parents=True, exist_ok=True)
    with (store_dir / ".init.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.search_registered_models(max_results=1)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return client


def _model_card(model: ScoringModel) -> dict[str, Any]:
    try:
        return dict(model.model_card())
    except Exception as exc:  # noqa: BLE001 - a model without a card still registers, visibly
        log.warning("model_card() failed: %s", exc)
        return {"error": f"model_card() failed: {exc}"}


def _quote(name: str) -> str:
    return name.replace("'", "\\'")
