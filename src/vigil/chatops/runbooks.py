"""The runbook knowledge base: ``docs/runbooks/<signature>.md``, one per anomaly signature."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vigil.errors import ConfigError

SIGNATURES = (
    "cpu_saturation",
    "memory_pressure",
    "disk_full",
    "disk_io_saturation",
    "network_degradation",
    "dependency_outage",
    "error_spike",
    "latency_regression",
    "target_down",
    "unknown",
)

DEFAULT_DIR = Path(__file__).resolve().parents[3] / "docs" / "runbooks"
_SECTION = re.compile(r"^## +(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Runbook:
    signature: str
    title: str
    meaning: str
    causes: tuple[str, ...]
    actions: tuple[str, ...]
    confirm: tuple[str, ...]
    promql: tuple[str, ...]
    path: Path


def _items(text: str) -> tuple[str, ...]:
    items = [re.sub(r"^\s*(?:[-*]|\d+\.)\s+", "", line).strip() for line in text.splitlines()]
    return tuple(i for i in items if i)


def parse_runbook(signature: str, text: str, path: Path) -> Runbook:
    title_match = re.search(r"^# +(.+)$", text, re.MULTILINE)
    parts = _SECTION.split(text)
    sections = {parts[i].strip().lower(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    missing = [s for s in ("what it means", "likely causes", "what to do now", "how to confirm") if s not in sections]
    if missing:
        raise ConfigError(f"runbook {path} lacks section(s): {', '.join(missing)}")
    promql_block = re.search(r"```promql\n(.*?)```", sections.get("promql", ""), re.DOTALL)
    return Runbook(
        signature=signature,
        title=title_match.group(1).strip() if title_match else signature,
        meaning=" ".join(sections["what it means"].split()),
        causes=_items(sections["likely causes"]),
        actions=_items(sections["what to do now"]),
        confirm=_items(sections["how to confirm"]),
        promql=_items(promql_block.group(1)) if promql_block else (),
        path=path,
    )


@lru_cache(maxsize=8)
def load_runbooks(directory: Path = DEFAULT_DIR) -> dict[str, Runbook]:
    if not directory.is_dir():
        raise ConfigError(f"runbook directory {directory} does not exist", hint="set chatops.runbooks_dir")
    books = {}
    for signature in SIGNATURES:
        path = directory / f"{signature}.md"
        if not path.exists():
            raise ConfigError(f"runbook {path} is missing", hint="every signature needs one")
        books[signature] = parse_runbook(signature, path.read_text(encoding="utf-8"), path)
    return books
