"""This process as one of several replicas: the lease table, the coordinator, status and requeue.

Built by the daemon when ``--coordination dynamodb:TABLE`` is given. It owns
the lease store (``ecsop.aws.coordination``), the ``ShardCoordinator``
(``ecsop.runtime.shards``) and its metrics, and connects the coordinator's
transitions to the controller: a shard taken over is prepared before any pass
enters it (``Controller.shard_acquiring``), then observed and queued off the
lease thread (``shard_acquired``, which calls ECS and must never delay a
renewal); a shard lost takes its releases' status and series with it.

For the HTTP endpoint it answers ``/status`` with every release and the
replica that owns it (read from the leases), and ``POST /requeue/NAME`` for a
release another replica owns by forwarding it there once.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from ecsop.aws.clients import ClientFactory
from ecsop.aws.coordination import DynamoLeaseStore
from ecsop.controller.manager import Controller
from ecsop.controller.ownership import ShardedOwnership
from ecsop.observability.lease_metrics import LeaseMetrics
from ecsop.runtime.lease import LeaseSettings, Tenure, boot_clock
from ecsop.runtime.shards import ShardCoordinator, ShardListener

log = structlog.get_logger("ecsop.controller.replica")

SCHEME = "dynamodb:"
FORWARD_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class CoordinationSettings:
    """How this replica coordinates with the others (``--coordination`` and friends)."""

    table: str
    """The DynamoDB table of leases and members (``ecsop coordination create-table``)."""
    replica_id: str
    """This process, as leases, members and ``writer=`` name it; unique per start."""
    url: str
    """Where the other replicas reach this one's HTTP endpoint (status, forwarded requeues)."""
    shards: int = 1
    """Releases are spread over this many leases; every replica must agree."""
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    region: str = ""
    """The table's region (default: the daemon's)."""


def parse_coordination(value: str) -> str:
    """``dynamodb:TABLE`` -> ``TABLE``; anything else is an error naming the form."""
    if not value.startswith(SCHEME) or not value[len(SCHEME) :].strip():
        raise ValueError(f"--coordination takes dynamodb:TABLE, not {value!r}")
    return value[len(SCHEME) :].strip()


class _Listener(ShardListener):
    def __init__(self, metrics: LeaseMetrics) -> None:
        self.metrics = metrics
        self.controller: Controller | None = None

    def acquiring(self, shard: int) -> None:
        if self.controller is not None:
            self.controller.shard_acquiring(shard)

    def acquired(self, tenure: Tenure) -> None:
        controller = self.controller
        if controller is None:
            return

        def observe_and_queue() -> None:
            try:
                controller.shard_acquired(tenure)
            except Exception:  # the resync queues the shard's releases anyway
                log.exception("could not queue the releases of a shard taken over")

        threading.Thread(
            target=observe_and_queue, name=f"ecsop-takeover-{tenure.shard}", daemon=True
        ).start()

    def lost(self, shard: int, why: str) -> None:
        controller = self.controller
        if controller is None:
            return
        # The gate is already closed; dropping status and series is bookkeeping that
        # costs time per release, so it runs off the lease thread too.
        threading.Thread(
            target=controller.shard_lost, args=(shard, why), name=f"ecsop-lost-{shard}", daemon=True
        ).start()

    def transition(self, shard: int, kind: str) -> None:
        self.metrics.transition(shard, kind)

    def renew_failed(self, shard: int) -> None:
        self.metrics.renew_failed(shard)

    def round_done(self, held: list[int], live: int, store_ok: bool) -> None:
        self.metrics.round_done(held, live, store_ok)


class Replica:
    def __init__(
        self,
        settings: CoordinationSettings,
        clients: ClientFactory,
        registry: CollectorRegistry,
        region: str,
    ) -> None:
        self.settings = settings
        # A renewal answered after the next round is due is worth nothing; at least a
        # second, though, so a loaded table is slow rather than down.
        timeout = max(1.0, settings.lease.retry_period_seconds)
        client = clients.quick_client("dynamodb", settings.region or region, timeout=timeout)
        store = DynamoLeaseStore(client, settings.table, settings.lease.lease_seconds)
        self.metrics = LeaseMetrics(registry, settings.shards)
        self._listener = _Listener(self.metrics)
        self.coordinator = ShardCoordinator(
            store,
            settings.shards,
            settings.replica_id,
            settings.url,
            settings.lease,
            self._listener,
            clock=boot_clock,
        )
        self.ownership = ShardedOwnership(self.coordinator)
        self._controller: Controller | None = None

    def attach(self, controller: Controller) -> None:
        self._controller = controller
        self._listener.controller = controller

    def start(self) -> None:
        self.coordinator.start()
        log.info(
            "coordinating with other replicas",
            replica=self.settings.replica_id,
            table=self.settings.table,
            shards=self.settings.shards,
            url=self.settings.url,
            lease_seconds=self.settings.lease.lease_seconds,
            renew_deadline_seconds=self.settings.lease.renew_deadline_seconds,
            retry_period_seconds=self.settings.lease.retry_period_seconds,
        )

    def stop(self) -> None:
        """Release every shard (the work loop has stopped) and leave the membership."""
        self.coordinator.stop(release=True)

    def health(self) -> tuple[bool, str]:
        return self.coordinator.health()

    # --- the HTTP endpoint ---------------------------------------------------------

    def status_header(self) -> dict[str, Any]:
        owners = self.coordinator.owners()
        return {
            "replica": self.settings.replica_id,
            "coordination": {
                "table": self.settings.table,
                "shards": self.settings.shards,
                "held": self.coordinator.held(),
                "healthy": self.health()[0],
                "why": self.health()[1],
                "replicas": self.coordinator.live_members(),
                "owners": [
                    {
                        "shard": o.shard,
                        "holder": o.holder,
                        "token": o.token,
                        "url": o.url,
                        "staleSeconds": round(o.stale_seconds, 1),
                    }
                    for o in owners.values()
                ],
            },
        }

    def releases(self) -> list[dict[str, Any]]:
        """Every release in the spec directory, with its shard and owner; details if ours."""
        controller = self._controller
        if controller is None:
            return []
        owners = self.coordinator.owners()
        out = []
        for name in controller.specs.names():
            shard = self.ownership.shard_of(name)
            owner = owners.get(shard)
            holder = owner.holder if owner else ""
            local = controller.statuses.get(name) if holder == self.settings.replica_id else None
            if local is not None:
                item = local.to_json()
            elif holder == self.settings.replica_id:
                item = _stub(name, "Owned", "owned by this replica; not reconciled yet")
            elif holder:
                item = _stub(name, "OwnedElsewhere", f"owned by replica {holder} (shard {shard})")
            else:
                item = _stub(
                    name, "NoOwner", f"no replica holds shard {shard} now: nobody acts on it"
                )
            item.update(shard=shard, owner=holder, ownerUrl=owner.url if owner else "")
            out.append(item)
        return out

    def route(self, name: str, query: str, authorization: str = "") -> tuple[int, str] | None:
        """``POST /requeue/NAME``: None to requeue here, else the answer (forwarded once).

        The caller's ``Authorization`` goes with the forwarded request: every replica
        checks the same API token, so the owner admits exactly whom this one did.
        """
        controller = self._controller
        if controller is None or controller.specs.entry(name) is None:
            return None
        if self.ownership.holds(name):
            return None
        shard = self.ownership.shard_of(name)
        owner = self.ownership.owner(name)
        if owner is None or not owner.holder:
            return 503, (
                f"no replica holds shard {shard} of {name} now; whichever takes it "
                "reconciles it first thing"
            )
        where = f"replica {owner.holder} ({owner.url or 'no URL known'})"
        if "forwarded" in query or not owner.url:
            return 409, f"{name} is owned by {where}; ask it"
        request = urllib.request.Request(
            f"{owner.url.rstrip('/')}/requeue/{name}?forwarded=1",
            method="POST",
            headers={"Authorization": authorization} if authorization else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=FORWARD_TIMEOUT_SECONDS) as answer:
                text = answer.read().decode(errors="replace").strip()
                return answer.status, f"forwarded to {where}: {text}"
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace").strip()
            return error.code, f"forwarded to {where}: {text}"
        except (urllib.error.URLError, OSError) as error:
            return 503, f"{name} is owned by {where}, which did not answer: {error}"


def _stub(name: str, reason: str, message: str) -> dict[str, Any]:
    return {"name": name, "phase": "Unknown", "reason": reason, "message": message}
