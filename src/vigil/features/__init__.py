"""Feature engineering: raw series -> signals -> per-step features, in batch or incrementally."""

from vigil.features.extractor import ALL_KINDS, DEFAULT_KINDS, FeatureExtractor, FeatureStream
from vigil.features.signals import SignalBuilder, SignalStream

__all__ = ["ALL_KINDS", "DEFAULT_KINDS", "FeatureExtractor", "FeatureStream", "SignalBuilder", "SignalStream"]
