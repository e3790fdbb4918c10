"""How big and how long each scenario runs: the full run and ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    workers: int = 4
    """ecsop's ``--workers`` (its default), and the baselines' thread count."""

    trigger_changes: int = 60
    """Spec changes per contender in the trigger scenario (one release each)."""
    naive_trigger_interval: float = 30.0
    """The naive reconciler's interval in the trigger scenario (real seconds)."""

    rollback_services: int = 20
    """Failing deploys per contender in the rollback scenario."""
    rollback_clock_speed: float = 5.0
    """Simulated seconds per real second in the rollback scenario; every poll interval
    is divided by it, so in simulated time each runs at its production default."""
    active_poll_sim: float = 5.0
    """ecsop's ``--active-poll-interval`` default, in simulated seconds."""
    resync_sim: float = 30.0
    """ecsop's ``--resync-interval`` default and the baselines' poll, in simulated seconds."""
    events_poll_sim: float = 30.0
    """ecsop's ``--active-poll-interval`` default with ``--events-queue``, simulated seconds."""
    events_resync_sim: float = 300.0
    """ecsop's ``--resync-interval`` default with ``--events-queue``, simulated seconds."""
    idle_resyncs: int = 2
    """Idle cost: each ecsop contender is watched for this many of its resync intervals once
    every rollout is over (at least ``idle_min_s`` real seconds)."""
    idle_min_s: float = 30.0
    """The shortest idle window, real seconds (several long polls of the event queue)."""

    strategy_services: int = 3
    """Services per strategy (rolling, blue/green, canary) in the strategies scenario."""
    strategy_clock_speed: float = 5.0
    """Simulated seconds per real second in the strategies scenario."""

    steady_sizes: tuple[int, ...] = (10, 100, 1000, 3000)
    """Releases (= services) in the steady-state cost and scale scenario."""
    steady_resyncs: int = 3
    """Resyncs measured per size (after one discarded)."""
    baseline_passes: int = 2
    """Passes of the naive reconciler and of the script fleet's watch, per size."""
    resync_small: float = 5.0
    """ecsop's resync interval (and the baselines') in the scale runs up to 100 releases."""

    race_fleet: int = 2000
    """Services in the race scenario's fleet (its burst of N/10 describes must be long
    enough for a commit to land in it)."""
    race_changes: int = 100
    """Spec changes committed at once in each repetition of the race scenario."""
    race_repetitions: int = 3
    """Race repetitions per fleet (shared family, distinct families); one control each."""
    race_resync_s: float = 10.0
    """ecsop's resync interval in the race scenario."""

    crashloop_services: int = 20
    """Services per contender in the crash-loop scenario (issue 24's worker)."""
    crashloop_clock_speed: float = 10.0
    """Simulated seconds per real second in the crash-loop scenario."""

    scale_sizes: tuple[int, ...] = (1000, 5000, 10000)
    """Releases in the scale scenario (one task definition family per service)."""
    scale_resyncs: int = 3
    """Resyncs measured per size in the scale scenario (after one discarded)."""

    def scale_resync_s(self, releases: int) -> float:
        """ecsop's resync interval in the scale scenario: its 30 s default past 1,000."""
        return 10.0 if releases <= 1000 else 30.0
    failover_trials: int = 10
    """kill -9 trials of the fail-over scenario (each moves every shard the victim held)."""
    failover_lease: tuple[float, float, float] = (15.0, 10.0, 2.0)
    """--lease-duration, --renew-deadline, --retry-period of the fail-over scenario."""
    failover_services: int = 40
    """Steady services of the fail-over scenario."""
    cost_services: int = 100
    """Steady services of the sharding-cost scenario."""
    replica_counts: tuple[int, ...] = (1, 2, 4)
    """Replicas (over 8 shards) of the sharding-cost scenario, besides one without coordination."""
    cost_resyncs: int = 4
    """Resync intervals (5 s) counted per replica count."""

    budget_sizes: tuple[int, ...] = (1000, 5000, 10000)
    """Releases in the throttled scenario (``bench/budget.py``)."""
    budget_contenders: tuple[str, ...] = ("paced", "today")
    """Who runs the throttled scenario (``bench/budget.py``'s ``CONTENDERS``)."""
    budget_resync_s: float = 30.0
    """ecsop's ``--resync-interval`` there (its default)."""
    budget_active_poll_s: float = 5.0
    """ecsop's ``--active-poll-interval`` there (its default)."""
    budget_steady_intervals: int = 2
    """Resync intervals (the effective ones) of steady state measured."""
    budget_min_window_s: float = 60.0
    """Shortest steady-state window, whatever the interval."""
    budget_changes: int = 20
    """Single spec changes timed per contender."""
    budget_change_spacing_s: float = 3.0
    """Seconds from one change to the next: RegisterTaskDefinition's budget refills."""
    budget_trigger_timeout_s: float = 60.0
    """A change not deployed within this is counted as missed."""
    budget_rollouts: int = 100
    """Rollouts started at once to measure the cost of polling them."""
    budget_timeout_s: float = 1800.0
    """Longest wait for a first pass or for every rollout to start."""

    timestamp_parses: int = 200
    """DescribeServices answers parsed per round in the timestamp scenario."""
    timestamp_rounds: int = 5
    """Rounds of it (the median is reported)."""

    def resync_seconds(self, releases: int) -> float:
        """ecsop's resync interval in the scale runs: longer than a full resync takes."""
        return self.resync_small if releases <= 100 else 10.0 if releases <= 1000 else 15.0


FULL = Config()
QUICK = Config(
    trigger_changes=10,
    naive_trigger_interval=5.0,
    rollback_services=4,
    strategy_services=1,
    idle_resyncs=1,
    steady_sizes=(10, 100),
    steady_resyncs=2,
    baseline_passes=1,
    crashloop_services=4,
    scale_sizes=(1000,),
    scale_resyncs=2,
    race_fleet=1000,
    race_repetitions=2,
    failover_trials=3,
    failover_lease=(6.0, 4.0, 1.0),
    failover_services=20,
    cost_services=40,
    cost_resyncs=2,
    budget_sizes=(100, 300),
    budget_resync_s=10.0,
    budget_steady_intervals=1,
    budget_min_window_s=15.0,
    budget_changes=5,
    budget_rollouts=20,
    timestamp_parses=50,
)
