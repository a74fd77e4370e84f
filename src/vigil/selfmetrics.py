"""The registry each Vigil process serves on its ``/metrics``.

Every component carries the standard ``process_*`` and ``python_*`` families, as any exporter
does, so an operator can see which of Vigil's own processes uses the CPU or memory its host
model is watching (the collector's per-cycle CPU burst was found this way).
"""

from __future__ import annotations

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry


def component_registry(*, auto_describe: bool = False) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=auto_describe)
    for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(standard)
    return registry
