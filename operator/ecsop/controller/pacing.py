"""Observing every release within the AWS API budget: the resync's plan and its pace.

A resync describes every release's service ten per DescribeServices call
(``batches``). Each batch's releases are queued for their pass as soon as its
answer lands, so a pass takes an observation seconds old, never one that
expired while the rest of a long resync ran, and no worker describes a
release on its own before its batch arrives (the first pass after start is
such a resync).

The batches must fit the budget (``ecsop.aws.budget``): a resync may spend
``resync_share`` of the DescribeServices rate of each account and Region,
leaving the rest to rollouts being watched and to spec changes. ``plan``
works out how long that takes. When it fits the configured interval, the
resync runs as fast as the budget lets it and the next one starts an interval
later; when it does not, the interval stretches to what it takes, the
batches are spread evenly over it, and ecsop says so (a log line, ``/status``,
``ecsop_resync_interval_seconds`` and the ``EcsopResyncStretched`` alert)
instead of bursting into AWS's throttling.

Called by ``ecsop.controller.manager`` (its resync) and ``active_poll``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from ecsop.aws.ecs import DESCRIBE_SERVICES_BATCH
from ecsop.aws.throttling import Rate
from ecsop.spec.loader import LoadedRelease

log = structlog.get_logger("ecsop.controller.pacing")

RateOf = Callable[[], Rate | None]
"""ecsop's DescribeServices rate in one account and Region; None without a budget."""

STRETCH_NOTICED = 1.1
"""An effective interval this much above the last one logged is logged again."""


@dataclass(frozen=True)
class Batch:
    """Up to ten releases of one (account, region, role, cluster): one DescribeServices."""

    account: str
    region: str
    role: str | None
    cluster: str
    members: tuple[LoadedRelease, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)


Group = tuple[str, str, str | None, str]
"""(account, region, role, cluster): releases one DescribeServices call can name together."""


def group_of(loaded: LoadedRelease) -> Group:
    spec = loaded.release.spec
    return (loaded.target.account, loaded.region, spec.role_arn, spec.cluster)


def batches(releases: Iterable[LoadedRelease]) -> list[Batch]:
    """The fewest DescribeServices calls that observe ``releases``, in a stable order."""
    groups: dict[Group, list[LoadedRelease]] = defaultdict(list)
    for loaded in releases:
        groups[group_of(loaded)].append(loaded)
    found: list[Batch] = []
    for (account, region, role, cluster), members in sorted(
        groups.items(), key=lambda item: tuple(str(part) for part in item[0])
    ):
        members.sort(key=lambda m: m.name)
        for start in range(0, len(members), DESCRIBE_SERVICES_BATCH):
            chunk = tuple(members[start : start + DESCRIBE_SERVICES_BATCH])
            found.append(Batch(account, region, role, cluster, chunk))
    return found


@dataclass(frozen=True)
class Plan:
    """One resync: its batches and how long they take within the budget."""

    batches: tuple[Batch, ...]
    configured: float
    """``--resync-interval``."""
    needed: float
    """Seconds the batches take at the resync's share of the budget (0 without one)."""
    rate: Rate | None
    """ecsop's DescribeServices budget per account and Region; None without one."""
    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    """DescribeServices calls per (account, region)."""

    @property
    def interval(self) -> float:
        """Seconds from the start of this resync to the start of the next."""
        return max(self.configured, self.needed)

    @property
    def stretched(self) -> bool:
        return self.needed > self.configured


def plan(
    releases: Iterable[LoadedRelease], configured: float, rate: Rate | None, share: float
) -> Plan:
    """How a resync of ``releases`` fits a budget of ``rate`` per account and Region.

    The budget of each account and Region is its own, but the resync walks
    them one after another, so their times add up. Bursts are left out: in
    steady state the bucket does not refill during a resync that needs
    stretching.
    """
    found = batches(releases)
    calls = Counter((b.account, b.region) for b in found)
    needed = 0.0
    if rate is not None and rate.sustained > 0 and share > 0:
        needed = sum(count / (rate.sustained * share) for count in calls.values())
    return Plan(tuple(found), configured, needed, rate, dict(calls))


Observe = Callable[[Sequence[LoadedRelease]], list[Exception]]
"""Describe these releases (one batch) into the service cache; the errors met."""


class ResyncPacer:
    """Runs resyncs to their plan and reports the interval they keep."""

    def __init__(
        self,
        configured: float | Callable[[], float],
        rate: RateOf,
        *,
        share: float = 0.75,
        monotonic: Callable[[], float] = time.monotonic,
        on_interval: Callable[[float, float], None] = lambda effective, configured: None,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self._configured = configured if callable(configured) else lambda: configured
        """The interval asked for now: ``--resync-interval``, or the event feed's cadence
        (long while events flow, short when they do not)."""
        self._rate = rate
        self.share = share
        self._monotonic = monotonic
        self._on_interval = on_interval
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        """Sleep up to the given seconds; True when stopping."""
        self._lock = threading.Lock()
        self._plan: Plan | None = None
        self._took = 0.0
        self._logged = self.configured

    @property
    def configured(self) -> float:
        return self._configured()

    def stop(self) -> None:
        """Stop spreading batches: a resync in progress finishes at once."""
        self._stop.set()

    @property
    def interval(self) -> float:
        """Seconds between the starts of two resyncs: the plan's, or the last one's if longer."""
        with self._lock:
            return self._interval(self._plan, self._took)

    def _interval(self, current: Plan | None, took: float) -> float:
        return max(self.configured, current.needed if current is not None else 0.0, took)

    def run(
        self,
        releases: Sequence[LoadedRelease],
        observe: Observe,
        queue: Callable[[Iterable[str]], None],
    ) -> list[Exception]:
        """Observe every release batch by batch, queueing each batch as it lands."""
        current = plan(releases, self.configured, self._rate(), self.share)
        with self._lock:
            self._plan = current
        self._report(current)
        started = self._monotonic()
        spacing = current.needed / len(current.batches) if current.stretched else 0.0
        errors: list[Exception] = []
        for index, batch in enumerate(current.batches):
            if spacing and self._wait(max(0.0, started + index * spacing - self._monotonic())):
                spacing = 0.0  # stopping: no more waiting
            errors.extend(observe(batch.members))
            queue(batch.names)
        with self._lock:
            self._took = self._monotonic() - started
        return errors

    def status(self) -> dict[str, Any]:
        """What ``/status`` shows about the resync (``resync``)."""
        with self._lock:  # one snapshot: a resync ending meanwhile changes both
            current, took = self._plan, self._took
        configured = self.configured
        effective = self._interval(current, took)
        rate = current.rate if current is not None else None
        return {
            "configuredSeconds": configured,
            "effectiveSeconds": round(effective, 3),
            "stretched": effective > configured,
            "describeServicesCalls": len(current.batches) if current is not None else 0,
            "describeServicesPerSecond": (
                None if rate is None else round(rate.sustained * self.share, 3)
            ),
            "lastResyncSeconds": round(took, 3),
        }

    def _report(self, current: Plan) -> None:
        effective = max(current.interval, self._took)
        self._on_interval(effective, current.configured)
        noticed = effective > current.configured and (
            effective > self._logged * STRETCH_NOTICED or self._logged <= current.configured
        )
        rate = current.rate
        if noticed:
            log.warning(
                "resync interval stretched to fit the AWS API budget"
                if current.stretched
                else "resync interval stretched: the last resync took longer than the interval",
                configured=current.configured,
                effective=round(effective, 1),
                releases=sum(len(b.members) for b in current.batches),
                describe_services=len(current.batches),
                describe_services_per_second=(
                    None if rate is None else round(rate.sustained * self.share, 2)
                ),
            )
            self._logged = effective
        elif effective <= current.configured < self._logged:
            log.info("resync interval back to the configured one", configured=current.configured)
            self._logged = current.configured
