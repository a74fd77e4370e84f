"""The watched service of the local stack: an orders API on SQLite (``app``) and its load (``loadgen``)."""
