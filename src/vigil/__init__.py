"""Vigil: ML anomaly detection for infrastructure and application metrics, built on Prometheus."""

__version__ = "0.1.0"
