"""What the live-stack modules of tests/integration/training share besides the `stack` fixture."""

BASELINE_S = 300  # archived before the tests start; one CV fold needs ~2 x (120 + gap) steps at 1 s
ENTITY = "demo"
STEP_S = 1.0  # the stack's scrape interval
