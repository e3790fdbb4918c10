"""Fault injection and call accounting for every AWS call the sandbox receives.

Rates come from the scenario's ``faults`` and can be replaced at run time
through the control API.  Decisions are drawn from their own seeded random
generator, so injecting faults does not change the simulation's random
sequence (which tasks of a flaky image crash).

An operation may also have a token bucket (``refillPerSecond``, ``burst``;
``token_bucket``), in wall-clock time like AWS's own throttling, and the
``ecs-documented`` preset gives every ECS operation ECS's rates
(``ecs_rates``), actions of one category sharing one bucket as at ECS.  A
call finding its bucket empty is throttled, and counted as throttled like any
injected throttling; otherwise the rates still apply.

``CallLog`` keeps the newest calls one by one, with the wall-clock and
simulated time each arrived at, who signed it and which cluster, service and
task definition it named: what a benchmark needs to time "spec changed" to
"UpdateService received" from another process.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ecsop.sandbox import ecs_rates
from ecsop.sandbox.protocol import Call
from ecsop.sandbox.scenario import Faults
from ecsop.sandbox.token_bucket import Rate, TokenBucket


@dataclass(frozen=True)
class Fault:
    status: int
    """400 means throttling; 500 or 503 a server error."""
    after_write: bool = False
    """The call is carried out first, then its answer replaced by ``status``."""


class FaultInjector:
    def __init__(
        self, faults: Faults, seed: int, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._faults = faults
        self._rng = random.Random(f"faults:{seed}")
        self._calls: Counter[tuple[str, str]] = Counter()
        self._injected: Counter[tuple[str, str, int]] = Counter()
        self._lost: Counter[tuple[str, str]] = Counter()
        """Of the injected 500s, those answering a call carried out (``lostAnswerRate``)."""
        self._monotonic = monotonic
        self._buckets: dict[tuple[str, str], TokenBucket | None] = {}

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        with self._lock:
            self._faults = value
            self._buckets.clear()  # new rates: full buckets

    def decide(self, call: Call) -> Fault | None:
        """Count ``call`` and decide whether to fail it."""
        with self._lock:
            key = (call.service, call.operation)
            self._calls[key] += 1
            bucket = self._bucket(key)
            if bucket is not None and not bucket.take():
                self._injected[(*key, 400)] += 1
                return Fault(400)
            rates = self._faults.for_operation(call.operation)
            if not (rates.throttle_rate or rates.error_rate or rates.lost_answer_rate):
                return None
            draw = self._rng.random()
            fault: Fault | None = None
            if draw < rates.throttle_rate:
                fault = Fault(400)
            elif draw < rates.throttle_rate + rates.error_rate:
                fault = Fault(self._rng.choice((500, 503)))
            elif draw < rates.throttle_rate + rates.error_rate + rates.lost_answer_rate:
                fault = Fault(500, after_write=True)
                self._lost[key] += 1
            if fault is not None:
                self._injected[(*key, fault.status)] += 1
            return fault

    def _bucket(self, key: tuple[str, str]) -> TokenBucket | None:
        service, operation = key
        faults = self._faults
        own = faults.operations.get(operation)
        rate: Rate | None = None
        if own is not None and own.refill_per_second is not None and own.burst is not None:
            rate = Rate(own.refill_per_second, own.burst)
        elif faults.preset == "ecs-documented" and service == "ecs":
            category, rate = ecs_rates.bucket(operation)
            key = (service, f"category:{category}")  # the category's actions share it
        elif faults.refill_per_second is not None and faults.burst is not None:
            rate = Rate(faults.refill_per_second, faults.burst)
        if key not in self._buckets:
            self._buckets[key] = None if rate is None else TokenBucket(rate, self._monotonic)
        return self._buckets[key]

    def calls(self) -> list[dict[str, object]]:
        with self._lock:
            rows: list[dict[str, object]] = []
            for (service, operation), count in sorted(self._calls.items()):
                rows.append(
                    {
                        "service": service,
                        "operation": operation,
                        "count": count,
                        "throttled": self._injected[(service, operation, 400)],
                        "errors": self._injected[(service, operation, 500)]
                        + self._injected[(service, operation, 503)],
                        "lostAnswers": self._lost[(service, operation)],
                    }
                )
            return rows

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()
            self._injected.clear()
            self._lost.clear()


CALL_LOG_SIZE = 500_000
"""Calls the log keeps (the oldest are dropped first): minutes of a 3,000-service fleet."""
LOGGED_FIELDS = ("cluster", "service", "taskDefinition", "family", "resourceArn")
"""Request fields copied into the log when the call names them (JSON protocol)."""


@dataclass(frozen=True)
class LoggedCall:
    seq: int
    """1, 2, 3... in arrival order; never reused, not even after a reset."""
    wall: float
    """Host epoch seconds when the sandbox received the call."""
    sim: float
    """Simulated epoch seconds (the sandbox clock) at the same instant."""
    service: str
    operation: str
    caller: str
    fault: int | None
    """The injected fault's HTTP status, if the call got one."""
    fields: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "wall": self.wall,
            "sim": self.sim,
            "service": self.service,
            "operation": self.operation,
            "caller": self.caller,
            "fault": self.fault,
            "request": dict(self.fields),
        }


class CallLog:
    """The newest ``size`` calls, one entry each, filterable by operation and caller."""

    def __init__(self, size: int = CALL_LOG_SIZE) -> None:
        self._lock = threading.Lock()
        self._size = size
        self._entries: list[LoggedCall] = []
        """Contiguous in ``seq``, so ``after`` finds its place by arithmetic, not by a scan."""
        self._seq = 0

    def record(
        self,
        call: Call,
        *,
        wall: float,
        sim: float,
        fault: int | None,
        request: Mapping[str, Any] | None = None,
    ) -> None:
        fields: dict[str, Any] = {}
        if request:
            fields = {k: request[k] for k in LOGGED_FIELDS if isinstance(request.get(k), str)}
            services = request.get("services")
            if isinstance(services, list):
                fields["services"] = [str(s) for s in services]
        with self._lock:
            self._seq += 1
            self._entries.append(
                LoggedCall(
                    self._seq, wall, sim, call.service, call.operation, call.caller, fault, fields
                )
            )
            if len(self._entries) > 2 * self._size:
                del self._entries[: len(self._entries) - self._size]

    def entries(
        self,
        *,
        operations: frozenset[str] = frozenset(),
        callers: frozenset[str] = frozenset(),
        after: int = 0,
        limit: int | None = None,
    ) -> list[LoggedCall]:
        """Entries with ``seq > after``, oldest first, of the given operations and callers
        (empty: all)."""
        with self._lock:
            first = self._entries[0].seq if self._entries else 0
            snapshot = self._entries[max(0, after + 1 - first) :]
        out: list[LoggedCall] = []
        for entry in snapshot:
            if operations and entry.operation not in operations:
                continue
            if callers and entry.caller not in callers:
                continue
            out.append(entry)
            if limit is not None and len(out) >= limit:
                break
        return out

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
