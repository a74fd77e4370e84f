"""Fault-injection validation: real faults against the live stack, scored like ``vigil bench``."""
