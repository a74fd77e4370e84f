"""The live local stack that tests/integration/training's end-to-end modules share: `vigil up` on free
ports with BASELINE_S of every entity archived (the collector archives at the default demo load, 2
rps). Module-scoped: each module that asks for it gets a stack of its own, so `make test` runs them on
parallel workers side by side."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.stack.stackcli import StackCLI, stack_fixture
from tests.integration.training.livestack import BASELINE_S


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackCLI]:
    """The stack, up, with BASELINE_S of every entity archived."""
    from vigil.config import load_settings

    home = tmp_path_factory.mktemp("live-training") / "vigil-home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIGIL_HOME", str(home))
        mp.delenv("VIGIL_CONFIG", raising=False)
        mp.setenv("VIGIL_RETRAIN_INTERVAL_S", "0")  # the tests drive retraining themselves
        # The stack's own trainer component checks drift over the last 2 minutes every 20 s.
        mp.setenv("VIGIL_DRIFT_CHECK_WINDOW_S", "120")
        mp.setenv("VIGIL_DRIFT_CHECK_INTERVAL_S", "20")
        for cli in stack_fixture(home, mp):
            up = cli.run("up", timeout=240)
            assert up.returncode == 0, up.stderr[-2000:]
            settings = load_settings()
            deadline = time.monotonic() + BASELINE_S + 240
            steps: dict[str, int] = {}
            while time.monotonic() < deadline:
                steps = _archived_steps(settings, BASELINE_S)
                if len(steps) >= 2 and min(steps.values()) >= BASELINE_S - 30:
                    break
                time.sleep(10)
            else:
                pytest.fail(f"the archive did not fill: {steps}")
            yield cli


def _archived_steps(settings: object, since_s: float) -> dict[str, int]:
    from vigil.errors import VigilError
    from vigil.ingest import signals

    out: dict[str, int] = {}
    try:
        for entity in signals.list_entities(settings=settings):
            frame = signals.load_entity_frame(entity, since_s=since_s, settings=settings)
            out[entity] = int(frame.notna().any(axis=1).sum())
    except (VigilError, OSError):  # empty archive yet, or a part compacted away mid-read
        return {}
    return out
