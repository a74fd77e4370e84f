"""What a fault campaign injects and how long it waits: the fault types, their weak instances, the
quick and full profiles, and the seeded order."""

from __future__ import annotations

import random
from dataclasses import dataclass

FAULT_TYPES = (
    "cpu_saturation",
    "memory_pressure",
    "disk_io_saturation",
    "disk_full",
    "network_loss",
    "network_bandwidth",
    "network_delay",
    "db_outage",
    "latency_regression",
    "process_crash",
)

# Weaker instances an operator still wants caught, so that a practical minimum set just below the
# strong faults cannot pass: half the cores, less memory, one writer, 10 % loss, a 256 kbit link,
# 200 ms added, a DB slowed rather than stalled, one crash without a loop. A full disk and a DB outage
# have no weaker form (full is full; a lock held is an outage), so they are not doubled.
WEAK = "_weak"
WEAK_TYPES = tuple(
    f"{t}{WEAK}"
    for t in ("cpu_saturation", "memory_pressure", "disk_io_saturation", "network_loss", "network_bandwidth",
              "network_delay", "latency_regression", "process_crash")
)  # fmt: skip


# Host faults that the service side would neither cause nor be caused by, each started while a fault of
# the service or its dependencies is on (a CPU fault during a database outage): each must make an
# incident of its own with its own cause, so an incident join window wide enough to merge unrelated
# faults that happen to overlap cannot pass. Written "first+second" in a schedule.
OVERLAP = "+"
HOST_FAULTS = frozenset({"cpu_saturation", "memory_pressure", "disk_io_saturation", "disk_full"})


def overlapped(entry: str) -> tuple[str, ...]:
    """The fault types of a schedule entry: one, or two for an overlap."""
    return tuple(entry.split(OVERLAP))


@dataclass(frozen=True)
class Profile:
    name: str
    baseline_s: float  # clean data the model trains on (at least)
    fault_s: float  # how long each fault is held
    gap_s: float  # recovery gap after each fault; also the quiet time false alarms are counted in
    repeats: int
    tail_s: float  # an anomaly this long after a fault still counts for it (must be < gap_s)
    demo_base_rps: float = 8.0
    # Wall-clock seconds per replayed day of the demand trace. The quick run is too short to learn a
    # 4-minute "day", so its workload drifts slowly instead; the full run keeps the stack's default.
    demo_day_s: float = 240.0
    warmup_timeout_s: float = 240.0
    settle_max_s: float = 120.0  # longest wait for the host to calm down after training
    # Quiet time before the first fault. Recovery after each fault fills most of its gap, so without
    # a soak the false-alarm rate rests on a few minutes of truly quiet time.
    soak_s: float = 0.0
    # Longest wait, after the CPU settles, for the models to forget the training run (their memory is
    # window + smoothing + hold: 45 s with the stack's defaults). The quick run has no time for it in
    # its 15 minutes; its quiet time is mostly recovery anyway (docs/validation.md).
    forget_max_s: float = 180.0
    # Longest wait before each fault for every entity's alarm to be off (the steady state a fault is
    # injected into). A fault injected while a false alarm is on is credited with that alarm, and its
    # chat message is the false alarm's; the quick run has 15 minutes, so it waits little.
    steady_max_s: float = 60.0
    # Cross-validation shape for `vigil train`: the pipeline needs 120 training steps in the first fold,
    # which a 4.5-minute baseline only gives with a single fold and a short gap.
    train_args: tuple[str, ...] = ()
    weak_repeats: int = 0  # instances of each WEAK_TYPES fault, scored like the others
    # (service-side fault, host fault) pairs; the host fault starts overlap_offset_s into the first,
    # while it is still on (fault_s). Serving joins a related entity's alarm into an incident that
    # began at most 15 s before it (serving.incident_join_s); the service's alarm of a strong fault
    # rises 4-12 s into it (quick runs), so 30 s leaves the host's alarm past the join window of
    # the service's incident even for the slowest of them.
    overlaps: tuple[tuple[str, str], ...] = ()
    overlap_offset_s: float = 30.0


PROFILES = {
    # 10 fault types within the 15 minutes `make test` allows. The recovery gap must outlast the model's
    # memory of a fault (long window + alarm hold + smoothing) or every fault but the first starts
    # with the alarm still on; the quick run shortens both (20 s window, 5 s hold) to fit its gaps.
    "quick": Profile(
        "quick",
        baseline_s=180,
        fault_s=10,
        gap_s=40,
        repeats=1,
        tail_s=12,
        demo_day_s=7200,
        warmup_timeout_s=45,
        settle_max_s=30,
        forget_max_s=0,
        steady_max_s=8,
        train_args=("--folds", "1", "--gap", "5", "--param", "long_window=20", "--param", "alarm_hold=5"),
    ),  # fmt: skip
    # Stack defaults (30 s window, 10 s hold): gaps of 75 s leave 30 s of true quiet after each recovery.
    # Six overlaps make it 40 faults: 20 strong, 8 weak, 12 in overlapping pairs.
    "full": Profile(
        "full",
        baseline_s=900,
        fault_s=45,
        gap_s=75,
        repeats=2,
        tail_s=30,
        soak_s=600,
        weak_repeats=1,
        overlaps=(
            ("db_outage", "cpu_saturation"),
            ("network_delay", "memory_pressure"),
            ("latency_regression", "disk_io_saturation"),
            ("network_loss", "cpu_saturation"),
            ("process_crash", "memory_pressure"),
            ("network_bandwidth", "disk_io_saturation"),
        ),
    ),
}


def schedule(profile: Profile, seed: int, types: tuple[str, ...] = FAULT_TYPES) -> list[str]:
    order = [t for t in types for _ in range(profile.repeats)]
    order += [w for w in WEAK_TYPES if w.removesuffix(WEAK) in types for _ in range(profile.weak_repeats)]
    order += [f"{a}{OVERLAP}{b}" for a, b in profile.overlaps if a in types and b in types]
    random.Random(seed).shuffle(order)
    return order
