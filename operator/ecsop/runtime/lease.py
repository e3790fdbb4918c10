"""Leases on shards, in the manner of client-go's leader election: settings, the store seam, values.

One lease per shard, kept in a store that offers conditional writes (DynamoDB
in production: ``ecsop.aws.coordination``). A lease item holds its
``holder`` (a replica id, "" once released), a fencing ``token`` that grows by
one each time the lease changes hands, and a ``version`` that changes on every
write (take, renew, release).

Time is never compared across machines. As in client-go
(``tools/leaderelection/leaderelection.go``), a candidate takes a lease only
after it has seen the same ``version`` for ``lease_seconds`` on its *own*
clock, and the holder stops acting ``renew_deadline_seconds`` after the start
of its last successful renewal. The observation that starts a candidate's wait
happens after the write it observed, which started after the holder's clock
read, so the holder has stopped acting at least ``lease_seconds -
renew_deadline_seconds`` before anyone may take over, whatever the clocks read.

This module holds the values and the seam; ``ecsop.runtime.shards`` runs the
loop. Knows nothing about releases, ECS or DynamoDB.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class LeaseSettings:
    """client-go's leader election timings (15 s / 10 s / 2 s by default), per shard."""

    lease_seconds: float = 15.0
    """How long a candidate waits after it last saw a lease change before taking it
    (client-go ``LeaseDuration``)."""
    renew_deadline_seconds: float = 10.0
    """A holder that has not renewed for this long stops acting on the shard
    (client-go ``RenewDeadline``). Less than ``lease_seconds``: the difference is the
    margin between the holder stopping and anyone else starting."""
    retry_period_seconds: float = 2.0
    """Between two rounds of renewing, heartbeating and acquiring (client-go ``RetryPeriod``)."""
    jitter: float = 0.2
    """Each round waits ``retry_period_seconds * (1 + jitter * U[0, 1))``, so replicas
    started together do not write in lockstep."""

    def __post_init__(self) -> None:
        if not self.renew_deadline_seconds < self.lease_seconds:
            raise ValueError("the renew deadline must be shorter than the lease duration")
        if not self.retry_period_seconds * (1 + self.jitter) < self.renew_deadline_seconds:
            raise ValueError("the retry period, with jitter, must be under the renew deadline")
        if self.retry_period_seconds <= 0 or self.jitter < 0:
            raise ValueError("the retry period must be positive and the jitter not negative")

    @property
    def margin_seconds(self) -> float:
        """Time between a holder that stopped renewing ceasing to act and a successor starting."""
        return self.lease_seconds - self.renew_deadline_seconds


class LeaseView(Protocol):
    """One lease item as read from the store."""

    @property
    def shard(self) -> int: ...

    @property
    def holder(self) -> str:
        """The replica holding it; "" when released."""
        ...

    @property
    def token(self) -> int:
        """The fencing token: +1 on every take, never reused."""
        ...

    @property
    def version(self) -> str:
        """Changes on every write; a candidate's wait restarts when it changes."""
        ...


class MemberView(Protocol):
    """One replica's membership item: it heartbeats by changing ``beat``."""

    @property
    def member(self) -> str: ...

    @property
    def beat(self) -> str: ...

    @property
    def url(self) -> str:
        """Where the replica's HTTP endpoint answers (for ``/status`` and forwarding)."""
        ...

    @property
    def gone(self) -> bool:
        """The replica left cleanly (SIGTERM)."""
        ...

    @property
    def shards(self) -> int:
        """The replica's ``--shards`` (0: not said, a replica of an earlier version)."""
        ...


class TableView(Protocol):
    """Everything in the store, read at once (one consistent Scan)."""

    @property
    def leases(self) -> Sequence[LeaseView]: ...

    @property
    def members(self) -> Sequence[MemberView]: ...

    @property
    def shards(self) -> int | None:
        """The shard count the table was set up with (None: not yet claimed)."""
        ...


class LeaseStore(Protocol):
    """The conditional writes leases need. Failures raise; a lost condition returns False."""

    def read(self) -> TableView: ...

    def take(self, shard: int, holder: str, token: int, version: str, expected: str | None) -> bool:
        """Make ``holder`` the holder with ``token`` if the lease still has version
        ``expected`` (None: no lease item exists yet)."""
        ...

    def renew(self, shard: int, holder: str, token: int, version: str) -> bool:
        """Write a new ``version`` if ``holder`` still holds the lease with ``token``."""
        ...

    def release(self, shard: int, holder: str, token: int, version: str) -> bool:
        """Empty the holder (keeping the token) if ``holder`` still holds it with ``token``."""
        ...

    def beat(self, member: str, beat: str, url: str, shards: int) -> None:
        """Write this replica's membership item with a new ``beat`` and its shard count."""
        ...

    def leave(self, member: str) -> None:
        """Mark this replica's membership item gone."""
        ...

    def claim_shards(self, shards: int) -> int:
        """Record the shard count if none is recorded; return the recorded one."""
        ...


@dataclass(frozen=True)
class Tenure:
    """This replica's hold on one shard, from one take to its loss or release."""

    shard: int
    token: int
    version: str
    """The version this replica wrote last (renewals are conditioned on holder and token)."""
    acting_until: float
    """Clock time after which this replica must not act on the shard: the start of the
    last successful take or renewal plus the renew deadline."""
    acquired_at: float

    def valid(self, now: float) -> bool:
        return now < self.acting_until


@dataclass(frozen=True)
class Seen:
    """What this replica last saw of a lease, and since when (its own clock)."""

    version: str | None
    """None: no lease item."""
    holder: str
    token: int
    since: float

    def takeable(
        self, now: float, me: str, settings: LeaseSettings, own_token: int | None = None
    ) -> bool:
        """Whether ``me`` may try to take the lease now.

        Free (never written, or released) at once, and our own stale item too: a
        tenure this process held, or tried to take, with ``own_token``, and does not
        act on now. Someone else's only once its version has not moved for a whole
        lease duration on our clock; so is an item naming ``me`` with a token this
        process never had (another process runs, or ran, with the same replica id).
        An item deleted by hand while someone held it is still theirs: they act
        until their renewal fails or their deadline passes, so the wait is the same.
        """
        if not self.holder or (self.holder == me and self.token == own_token):
            return True
        return now - self.since >= settings.lease_seconds


def seen(previous: Seen | None, lease: LeaseView | None, now: float) -> Seen:
    """Fold one read of a lease into what was seen: the wait restarts when its version moves."""
    version = lease.version if lease is not None else None
    if previous is not None and previous.version == version:
        return previous
    if lease is None:  # deleted by hand: its holder, if any, may still be acting
        return Seen(
            None, previous.holder if previous else "", previous.token if previous else 0, now
        )
    return Seen(lease.version, lease.holder, lease.token, now)


def boot_clock() -> float:
    """Seconds on a clock that never goes back and keeps counting while the machine sleeps.

    ``CLOCK_BOOTTIME`` where the platform has it: a suspended or paused VM whose
    monotonic clock stood still would otherwise believe its tenure still young.
    """
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is not None:
        return time.clock_gettime(boottime)
    return time.monotonic()
