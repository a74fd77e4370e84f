"""Streaming detection: per-entity state fed by remote_write, scoring, alarms, hot reload."""
