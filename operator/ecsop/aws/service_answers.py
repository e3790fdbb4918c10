"""Each service's DescribeServices answer mapped once, and reused while ECS says the same.

A resync describes every service every 30 s, and in steady state ECS answers
exactly what it answered the last time. Mapping a botocore answer to a
``ServiceState`` (``ecs_mapping.service_state``), then comparing that with the
state the release's last pass settled on (``ServiceState.says_what``), was the
largest share of ecsop's own CPU per resync at 10,000 releases. Comparing the
answer with the one last mapped is one dict comparison in C, a tenth of the
mapping's cost (botocore's times are plain UTC datetimes here,
``ecsop.aws.timestamps``). An equal answer gets the same state back, dated by
its own response; the settled check then meets the very same objects field by
field and compares them by identity.

The answer kept is the one the state was mapped from, so the two share their
strings: about 4.6 KB more per service (46 MB at 10,000 releases, measured with
tracemalloc on the sandbox's answers).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime
from typing import Any

from ecsop.aws import ecs_mapping
from ecsop.decision.ecs_state import ServiceState


class ServiceAnswers:
    """Service ARN -> (the answer last mapped, its state), the least recently used
    dropped past ``capacity``; thread-safe (a gateway's workers share it)."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        """Services remembered (``GatewayPool.fit_cache`` raises it with the releases)."""
        self._lock = threading.Lock()
        self._mapped: OrderedDict[str, tuple[str, dict[str, Any], ServiceState]] = OrderedDict()

    def state(
        self, cluster: str, raw: dict[str, Any], observed_at: datetime | None
    ) -> ServiceState:
        """``ecs_mapping.service_state(cluster, raw, observed_at)``, without mapping an
        answer equal to the last one mapped for that service."""
        arn = str(raw["serviceArn"])
        with self._lock:
            known = self._mapped.get(arn)
            if known is not None:
                self._mapped.move_to_end(arn)
        if known is not None and known[0] == cluster and known[1] == raw:
            earlier = known[2]
            if earlier.observed_at == observed_at:
                return earlier
            return replace(earlier, observed_at=observed_at)
        state = ecs_mapping.service_state(cluster, raw, observed_at)
        with self._lock:
            self._mapped[arn] = (cluster, raw, state)
            self._mapped.move_to_end(arn)
            while len(self._mapped) > self.capacity:
                self._mapped.popitem(last=False)
        return state

    def __len__(self) -> int:
        with self._lock:
            return len(self._mapped)
