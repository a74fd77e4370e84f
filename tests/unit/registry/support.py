"""Helpers shared by the registry, training and drift tests: real SMD slices, a real MLflow store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from vigil.config import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[3]
SMD_SLICE = REPO_ROOT / "tests" / "data" / "training" / "smd"
# Small and quick: three fast detectors, in-sample calibration. The tests check plumbing, not accuracy.
FAST_PARAMS: dict[str, object] = {"detectors": ["iforest", "pca", "ocsvm"], "cross_fit": False}


def smd_slice(entity: str = "machine-1-3", split: str = "train", rows: int | None = None) -> pd.DataFrame:
    from vigil.datasets import load_smd_like

    data = load_smd_like(SMD_SLICE, entity)
    frame = data.train if split == "train" else data.test
    return frame.iloc[:rows] if rows else frame


def fit_fast(frame: pd.DataFrame, seed: int = 0) -> object:
    from vigil.detectors.pipeline import AnomalyPipeline

    return AnomalyPipeline(seed=seed, **FAST_PARAMS).fit(frame)  # type: ignore[arg-type]


def make_template(dest: Path) -> Path:
    """An empty embedded MLflow store with its schema created (creating it costs ~4 s, copying ms)."""
    from vigil.registry import ModelRegistry

    registry = ModelRegistry(load_settings(home=dest))
    registry.client.search_registered_models()
    return dest / "mlflow" / "mlflow.db"


def settings_from_template(home: Path, template_db: Path) -> Settings:
    (home / "mlflow").mkdir(parents=True, exist_ok=True)
    shutil.copy2(template_db, home / "mlflow" / "mlflow.db")
    return load_settings(home=home)
