"""ecsop's share of AWS's API rates: one paced token bucket per (account, region, operation).

AWS throttles per account and Region, and every tool in the account spends
the same buckets (humans in the console, CI, other controllers). ecsop keeps
to ``share`` of each documented bucket (``ecsop.aws.throttling``): a call
waits for its token instead of being sent into throttling. Operations that
AWS throttles together (ECS's DescribeServices and ListServices) share one
budget, as they share one bucket at AWS.

Every boto3 client the daemon makes draws from it, except SQS's and
DynamoDB's, which AWS does not meter per request (``throttling.metered``).
``instrument`` registers a ``before-send`` handler (botocore's documented event system), which fires
once per HTTP attempt, retries included, as AWS counts them. The bucket
reserves tokens the way golang.org/x/time/rate's ``Reserve`` does: a caller
that finds no token takes a future one and sleeps until it exists, so
callers are served in order, spaced at the sustained rate, and never refused.

The controller reads ``rate`` to plan how long a resync takes within the
budget (``ecsop.controller.pacing``). ``share`` 0 turns the budget off:
nothing waits, as before it existed.

A worker asleep in the budget serves nobody else. Work that can come back
later (a deploy, never a rollback) runs inside ``deferrable(seconds)``: a
call that would wait longer takes no token and raises ``BudgetDeferred``
instead, and the controller requeues the release for when the token will
exist (client-go's ``AddAfter``). Otherwise twenty deploys of one commit,
paced at RegisterTaskDefinition's half-a-call-a-second, held every worker for
seconds each while a failing rollout's rollback waited in the queue behind
them (bench/README, the rollback scenario).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ecsop.aws import throttling
from ecsop.aws.throttling import Rate

DEFAULT_SHARE = 0.5
"""Half of each documented bucket: the other half is left to everything else in the account."""


@dataclass(frozen=True)
class BudgetSettings:
    share: float = DEFAULT_SHARE
    """Fraction of each of AWS's documented rates (sustained and burst) ecsop may use per
    account and Region; 0 turns the budget off, above 1 assumes raised quotas."""


Key = tuple[str, str, str]
"""(account, region, bucket name)."""

WaitListener = Callable[[str, str, float], None]
"""(service, operation, seconds waited) for every call that had to wait."""
DeferListener = Callable[[str, str], None]
"""(service, operation) for every deferrable call not sent (``BudgetDeferred``)."""


class BudgetDeferred(Exception):
    """A deferrable call would wait longer than its caller allows; no token was taken."""

    def __init__(self, service: str, operation: str, seconds: float) -> None:
        super().__init__(f"{service}:{operation} would wait {seconds:.2f}s for the API budget")
        self.seconds = seconds


_local = threading.local()


@contextmanager
def deferrable(max_wait: float) -> Iterator[None]:
    """Calls of this thread inside the block raise ``BudgetDeferred`` rather than
    wait longer than ``max_wait`` seconds for their token."""
    previous = getattr(_local, "max_wait", None)
    _local.max_wait = max_wait
    try:
        yield
    finally:
        _local.max_wait = previous


class _Reservations:
    """A token bucket whose callers reserve tokens, possibly future ones."""

    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self._tokens = rate.burst
        self._at = now

    def reserve(self, now: float, max_wait: float | None = None) -> tuple[bool, float]:
        """Take a token: (taken, seconds until it exists; 0 when one was there).

        With ``max_wait``, a token further away than that is not taken.
        """
        elapsed = max(0.0, now - self._at)
        self._at = now
        self._tokens = min(self.rate.burst, self._tokens + elapsed * self.rate.sustained)
        left = self._tokens - 1.0
        wait = 0.0 if left >= 0 else -left / self.rate.sustained
        if max_wait is not None and wait > max_wait:
            return False, wait
        self._tokens = left
        return True, wait


class CallBudget:
    """Paces every AWS call of the daemon to ``share`` of AWS's rates; thread-safe."""

    def __init__(
        self,
        settings: BudgetSettings | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_wait: WaitListener = lambda service, operation, seconds: None,
        on_defer: DeferListener = lambda service, operation: None,
    ) -> None:
        self.settings = settings or BudgetSettings()
        if self.settings.share < 0:
            raise ValueError("the API budget's share cannot be negative")
        self._monotonic = monotonic
        self._sleep = sleep
        self._on_wait = on_wait
        self._on_defer = on_defer
        self._lock = threading.Lock()
        self._buckets: dict[Key, _Reservations] = {}
        self.own_account = ""
        """The daemon's own account (STS), for clients that assume no role."""

    @property
    def enabled(self) -> bool:
        return self.settings.share > 0

    def rate(self, service: str, operation: str) -> Rate | None:
        """ecsop's rate for ``operation`` in any one account and Region; None when off."""
        if not self.enabled:
            return None
        return throttling.bucket_of(service, operation).rate.scaled(self.settings.share)

    def acquire(self, account: str, region: str, service: str, operation: str) -> float:
        """Wait for one call's token; the seconds waited.

        Inside ``deferrable``, raises ``BudgetDeferred`` instead of a longer wait.
        """
        if not self.enabled:
            return 0.0
        bucket = throttling.bucket_of(service, operation)
        key = (account or self.own_account, region, bucket.name)
        max_wait = getattr(_local, "max_wait", None)
        with self._lock:
            now = self._monotonic()
            found = self._buckets.get(key)
            if found is None:
                found = self._buckets[key] = _Reservations(
                    bucket.rate.scaled(self.settings.share), now
                )
            taken, wait = found.reserve(now, max_wait)
        if not taken:
            self._on_defer(service, operation)
            raise BudgetDeferred(service, operation, wait)
        if wait > 0:
            self._on_wait(service, operation, wait)
            self._sleep(wait)
        return wait

    def instrument(self, client: Any, role_arn: str | None) -> None:
        """Make every HTTP attempt of ``client`` wait for its token first."""
        service = str(client.meta.service_model.endpoint_prefix)
        if not throttling.metered(service):
            return  # SQS, DynamoDB: no shared request-rate bucket to keep within
        region = str(client.meta.region_name or "")
        account = account_of(role_arn)

        def before_send(event_name: str = "", **_: Any) -> None:
            operation = event_name.rsplit(".", 1)[-1]
            self.acquire(account, region, service, operation)

        client.meta.events.register("before-send", before_send)


def account_of(role_arn: str | None) -> str:
    """The account of ``arn:aws:iam::ACCOUNT:role/...``; "" for none (the daemon's own)."""
    if not role_arn:
        return ""
    parts = role_arn.split(":")
    return parts[4] if len(parts) > 5 else ""
