"""``vigil upgrade-check``: what this version of Vigil will do with every file an existing home holds.

Each persisted format names its version, and the module that owns it says what this code does with
one it finds (:class:`~vigil.statefile.FormatCheck`): read it, migrate it, set it aside and start
that part afresh, or refuse it. Run by the new version against the old home before switching over
(docs/operations.md, "Upgrade"); it reads everything and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vigil.alerting.sender import check_alert_queue
from vigil.chatops.chatlog import check_chat_log
from vigil.config import Settings
from vigil.detection.engine import check_snapshot
from vigil.detection.incidents import check_incident_state
from vigil.detection.maintenance import check_maintenance_state
from vigil.ingest.archive import check_archive
from vigil.registry.bundle import MANIFEST, check_bundle
from vigil.registry.store import ModelRegistry
from vigil.statefile import REFUSE, FormatCheck

__all__ = ["check_home", "refused"]

_STATE_FILES: tuple[tuple[str, Callable[[Path], FormatCheck]], ...] = (
    ("alerts.json", check_alert_queue),
    ("incidents.json", check_incident_state),
    ("maintenance.json", check_maintenance_state),
    ("chatlog.json", check_chat_log),
)


def check_home(settings: Settings) -> list[FormatCheck]:
    """Every persisted file under ``settings.home`` (and the registry ``settings`` points at), judged."""
    state = settings.home / "state"
    checks = [check(state / name) for name, check in _STATE_FILES if (state / name).is_file()]
    checks += [check_snapshot(p) for p in sorted(state.glob("detection*.pkl"))]
    checks += check_archive(settings.archive_dir)
    # MLflow's artifacts and serving's copies; not the registry's download cache (a bad copy there is
    # fetched again) nor dot-folders (temporaries a crash left, never read).
    cache = settings.mlflow_dir / "cache"
    bundles = {
        m.parent
        for root in (settings.mlflow_dir, settings.models_dir)
        for m in root.rglob(MANIFEST)
        if not m.is_relative_to(cache) and not any(p.startswith(".") for p in m.relative_to(root).parts)
    }
    checks += [check_bundle(p) for p in sorted(bundles)]
    if settings.mlflow_tracking_uri or (settings.mlflow_dir / "mlflow.db").is_file():
        checks.append(ModelRegistry(settings).check_store())
    return checks


def refused(checks: list[FormatCheck]) -> list[FormatCheck]:
    return [c for c in checks if c.action == REFUSE]
