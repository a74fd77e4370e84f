"""Training orchestration: ``vigil train``, time-ordered CV, selection, scheduled retraining.

Wires the data sources (datasets, archive), the pipeline (``vigil.detectors``), the bench metrics
(``vigil.evaluation``), drift references (``vigil.drift``) and the registry (``vigil.registry``).
"""

from vigil.training.cv import Fold, expanding_window_splits, folds
from vigil.training.data import EntityData, data_hash, from_archive, from_dataset
from vigil.training.retrainer import DriftTrigger, Retrainer
from vigil.training.selection import Decision, SelectionRule
from vigil.training.train import TrainConfig, TrainResult, default_factory, train_entity, train_many

__all__ = [
    "Decision",
    "DriftTrigger",
    "EntityData",
    "Fold",
    "Retrainer",
    "SelectionRule",
    "TrainConfig",
    "TrainResult",
    "data_hash",
    "default_factory",
    "expanding_window_splits",
    "folds",
    "from_archive",
    "from_dataset",
    "train_entity",
    "train_many",
]
