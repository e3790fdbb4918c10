"""A world of replicas sharing one lease table in memory, on one manual clock.

``Table`` does what DynamoDB does for ``ecsop.aws.coordination`` (conditional
writes, one consistent read of everything); each replica reaches it through a
``Link`` that can be cut (the table down or throttled for that replica) or
made to lose answers (the write happened, the caller never heard). Time is
one ``Clock`` shared by every replica: "real time", which each replica reads
as its own clock, so the invariant "never two replicas acting on a shard" can
be checked at any instant.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ecsop.aws.coordination import LeaseItem, MemberItem, TableItems
from ecsop.runtime.lease import LeaseSettings
from ecsop.runtime.shards import ShardCoordinator, ShardListener


class Down(Exception):
    """The table did not answer."""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Table:
    def __init__(self) -> None:
        self.leases: dict[int, LeaseItem] = {}
        self.members: dict[str, MemberItem] = {}
        self.shards: int | None = None
        self.takes: list[tuple[int, str, int]] = []
        """Every successful take: (shard, holder, token)."""

    def read(self) -> TableItems:
        return TableItems(tuple(self.leases.values()), tuple(self.members.values()), self.shards)

    def take(self, shard: int, holder: str, token: int, version: str, expected: str | None) -> bool:
        current = self.leases.get(shard)
        if (current.version if current else None) != expected:
            return False
        self.leases[shard] = LeaseItem(shard, holder, token, version)
        self.takes.append((shard, holder, token))
        return True

    def renew(self, shard: int, holder: str, token: int, version: str) -> bool:
        current = self.leases.get(shard)
        if current is None or current.holder != holder or current.token != token:
            return False
        self.leases[shard] = LeaseItem(shard, holder, token, version)
        return True

    def release(self, shard: int, holder: str, token: int, version: str) -> bool:
        current = self.leases.get(shard)
        if current is None or current.holder != holder or current.token != token:
            return False
        self.leases[shard] = LeaseItem(shard, "", token, version)
        return True

    def beat(self, member: str, beat: str, url: str, shards: int) -> None:
        self.members[member] = MemberItem(member, beat, url, False, shards=shards)

    def leave(self, member: str) -> None:
        before = self.members.get(member)
        if before is not None:
            self.members[member] = MemberItem(
                member, before.beat, before.url, True, shards=before.shards
            )

    def claim_shards(self, shards: int) -> int:
        if self.shards is None:
            self.shards = shards
        return self.shards


@dataclass
class Link:
    """One replica's way to the table."""

    table: Table
    down: bool = False
    lose_answers: bool = False
    """Writes are applied, but the caller gets an error (a timeout after the fact)."""

    def _check(self) -> None:
        if self.down:
            raise Down("table unreachable")

    def read(self) -> TableItems:
        self._check()
        return self.table.read()

    def take(self, shard: int, holder: str, token: int, version: str, expected: str | None) -> bool:
        self._check()
        ok = self.table.take(shard, holder, token, version, expected)
        if self.lose_answers:
            raise Down("answer lost")
        return ok

    def renew(self, shard: int, holder: str, token: int, version: str) -> bool:
        self._check()
        ok = self.table.renew(shard, holder, token, version)
        if self.lose_answers:
            raise Down("answer lost")
        return ok

    def release(self, shard: int, holder: str, token: int, version: str) -> bool:
        self._check()
        return self.table.release(shard, holder, token, version)

    def beat(self, member: str, beat: str, url: str, shards: int) -> None:
        self._check()
        self.table.beat(member, beat, url, shards)

    def leave(self, member: str) -> None:
        self._check()
        self.table.leave(member)

    def claim_shards(self, shards: int) -> int:
        self._check()
        return self.table.claim_shards(shards)


class Recorder(ShardListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def transition(self, shard: int, kind: str) -> None:
        self.events.append((kind, shard))


@dataclass
class Replica:
    name: str
    coordinator: ShardCoordinator
    link: Link
    listener: Recorder
    paused: bool = False
    crashed: bool = False


@dataclass
class World:
    shards: int = 8
    settings: LeaseSettings = field(default_factory=LeaseSettings)
    seed: int = 0
    clock: Clock = field(default_factory=Clock)
    table: Table = field(default_factory=Table)
    replicas: list[Replica] = field(default_factory=list)

    def add(self, name: str, shards: int | None = None, skew: float = 0.0) -> Replica:
        """A replica; ``skew``: its clock reads that many seconds off "real time"."""
        link = Link(self.table)
        listener = Recorder()
        coordinator = ShardCoordinator(
            link,
            shards or self.shards,
            name,
            f"http://{name}",
            self.settings,
            listener,
            clock=(lambda: self.clock.now + skew) if skew else self.clock,
            rng=random.Random(f"{self.seed}:{name}"),
            drain_seconds=0.0,
        )
        replica = Replica(name, coordinator, link, listener)
        self.replicas.append(replica)
        return replica

    def round(self, *, step: float | None = None) -> None:
        """Every running replica does one round, then time moves one retry period."""
        for replica in self.replicas:
            if not replica.paused and not replica.crashed:
                replica.coordinator.round()
                self.check()
        self.clock.now += self.settings.retry_period_seconds if step is None else step
        self.check()

    def rounds(self, count: int) -> None:
        for _ in range(count):
            self.round()

    def acting(self, shard: int) -> list[str]:
        """Replicas that may act on ``shard`` right now (crashed ones cannot act at all)."""
        return [
            r.name
            for r in self.replicas
            if not r.crashed and r.coordinator.holding(shard) is not None
        ]

    def check(self) -> None:
        for shard in range(self.shards):
            acting = self.acting(shard)
            assert len(acting) <= 1, f"shard {shard} acted on by {acting} at {self.clock.now}"

    def held(self) -> dict[str, list[int]]:
        return {r.name: r.coordinator.held() for r in self.replicas if not r.crashed}
