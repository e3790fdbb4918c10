"""Which releases this replica may act on, and as whom it writes.

Alone (no ``--coordination``), every release is this process's and its
``writer=`` is its instance id: today's behaviour. With coordination, a
release belongs to shard ``shard_of(name)`` (a stable hash of its name), and
this replica acts on it only while it holds that shard's lease
(``ecsop.runtime.shards``): ``acting`` is checked right before a pass, the
fence (``check``) right before every write, and ``writer`` names the replica
and its fencing token, ``writer=REPLICA@SHARD.TOKEN`` in ``ecsop:state``.

Callers: ``ecsop.controller.manager`` (the gate and the writer of each pass,
``ecsop.controller.executor.WriteLog``'s ``predecessor``), the daemon (status).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ecsop.runtime.fence import OwnershipLost
from ecsop.runtime.lease import Tenure
from ecsop.runtime.shards import Owner, ShardCoordinator


def shard_of(name: str, shards: int) -> int:
    """The shard of a release: stable across processes, versions and Python's hash seed."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


@dataclass(frozen=True)
class Claim:
    """This replica's right to act on one release for one pass."""

    shard: int
    tenure: Tenure | None
    """None when running alone."""
    writer: str | None
    """``writer=`` for the memory this pass writes; None: the instance id."""


class Ownership:
    """Running alone: every release is this replica's, always."""

    coordinated = False
    shards = 1

    def shard_of(self, name: str) -> int:
        return 0

    def holds(self, name: str) -> bool:
        return True

    @contextmanager
    def acting(self, name: str) -> Iterator[Claim | None]:
        yield Claim(0, None, None)

    def check(self, claim: Claim, name: str) -> None:
        """Raise ``OwnershipLost`` if ``claim`` no longer allows writing (never, alone)."""

    def is_predecessor(self, writer: str) -> bool:
        """Whether ``writer`` names an earlier tenure of a shard this replica now holds."""
        return False

    def owner(self, name: str) -> Owner | None:
        return None


class ShardedOwnership(Ownership):
    """Releases spread over shards, each held by one replica at a time."""

    coordinated = True

    def __init__(self, coordinator: ShardCoordinator) -> None:
        self.coordinator = coordinator
        self.shards = coordinator.shards

    def shard_of(self, name: str) -> int:
        return shard_of(name, self.shards)

    def holds(self, name: str) -> bool:
        return self.coordinator.holding(self.shard_of(name)) is not None

    @contextmanager
    def acting(self, name: str) -> Iterator[Claim | None]:
        shard = self.shard_of(name)
        with self.coordinator.acting(shard) as tenure:
            if tenure is None:
                yield None
            else:
                yield Claim(shard, tenure, f"{self.coordinator.me}@{shard}.{tenure.token}")

    def check(self, claim: Claim, name: str) -> None:
        if claim.tenure is not None and not self.coordinator.still_holds(claim.tenure):
            raise OwnershipLost(
                f"this replica no longer holds shard {claim.shard} (token {claim.tenure.token}) "
                f"of release {name}: not starting the write"
            )

    def is_predecessor(self, writer: str) -> bool:
        _, _, tenure = writer.rpartition("@")
        shard, _, token = tenure.partition(".")
        if not (shard.isdigit() and token.isdigit()):
            return False
        held = self.coordinator.holding(int(shard))
        return held is not None and int(token) < held.token

    def owner(self, name: str) -> Owner | None:
        return self.coordinator.owners().get(self.shard_of(name))
