"""Fault injection and call accounting for every AWS call the sandbox receives.

Rates come from the scenario's ``faults`` and can be replaced at run time
through the control API.  Decisions are drawn from their own seeded random
generator, so injecting faults does not change the simulation's random
sequence (which tasks of a flaky image crash).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass

from ecsop.sandbox.protocol import Call
from ecsop.sandbox.scenario import Faults


@dataclass(frozen=True)
class Fault:
    status: int
    """400 means throttling; 500 or 503 a server error."""


class FaultInjector:
    def __init__(self, faults: Faults, seed: int) -> None:
        self._lock = threading.Lock()
        self._faults = faults
        self._rng = random.Random(f"faults:{seed}")
        self._calls: Counter[tuple[str, str]] = Counter()
        self._injected: Counter[tuple[str, str, int]] = Counter()

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        with self._lock:
            self._faults = value

    def decide(self, call: Call) -> Fault | None:
        """Count ``call`` and decide whether to fail it."""
        with self._lock:
            key = (call.service, call.operation)
            self._calls[key] += 1
            rates = self._faults.for_operation(call.operation)
            if not (rates.throttle_rate or rates.error_rate):
                return None
            draw = self._rng.random()
            fault: Fault | None = None
            if draw < rates.throttle_rate:
                fault = Fault(400)
            elif draw < rates.throttle_rate + rates.error_rate:
                fault = Fault(self._rng.choice((500, 503)))
            if fault is not None:
                self._injected[(*key, fault.status)] += 1
            return fault

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
                    }
                )
            return rows

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()
            self._injected.clear()
