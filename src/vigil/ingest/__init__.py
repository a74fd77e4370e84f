"""Adapters to Prometheus-compatible servers: the PromQL client, the Parquet archive and its
collector, data-quality accounting, the signal catalog, and the remote_write decoder.

Modules are imported on use (``from vigil.ingest.archive import Archive``); this package imports
nothing itself, so ``vigil --help`` stays fast. See docs/data.md.
"""
