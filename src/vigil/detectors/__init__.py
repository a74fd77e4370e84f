"""Anomaly detectors behind one scikit-learn-style contract, and the pipeline that combines them."""

from vigil.detectors.autoencoder import AutoencoderDetector
from vigil.detectors.base import BaseDetector
from vigil.detectors.iforest import IForestDetector
from vigil.detectors.lof import LOFDetector
from vigil.detectors.ocsvm import OCSVMDetector
from vigil.detectors.pca import PCADetector

__all__ = [
    "AutoencoderDetector",
    "BaseDetector",
    "IForestDetector",
    "LOFDetector",
    "OCSVMDetector",
    "PCADetector",
]
