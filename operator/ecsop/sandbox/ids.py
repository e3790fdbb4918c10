"""Identifiers and ARNs, drawn from the scenario's seeded random generator.

ECS ids look random (task ids are 32 hex digits, deployment ids
``ecs-svc/`` + 19 digits, event ids UUIDs); drawing them from one seeded
``random.Random`` keeps a scenario replayable: same seed, same ids.
"""

from __future__ import annotations

import random
import uuid


class Ids:
    def __init__(self, rng: random.Random, region: str, account_id: str) -> None:
        self.rng = rng
        self.region = region
        self.account_id = account_id
        self._ip = 0

    def arn(self, resource: str) -> str:
        return f"arn:aws:ecs:{self.region}:{self.account_id}:{resource}"

    def task_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def deployment_id(self) -> str:
        return f"ecs-svc/{self.rng.randrange(10**18, 10**19)}"

    def revision_id(self) -> str:
        """The last part of a service revision ARN (digits, like ECS's)."""
        return str(self.rng.randrange(10**18, 10**19))

    def event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def runtime_id(self, task_id: str) -> str:
        return f"{task_id}-{self.rng.randrange(10**9, 10**10)}"

    def private_ip(self) -> str:
        """Task ENI addresses: 10.0.0.0/8, handed out in order."""
        self._ip += 1
        n = self._ip
        return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
