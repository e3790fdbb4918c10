"""Sandbox tests: a SandboxServer per test on a frozen clock, driven through boto3.

The clock runs at speed 0 and tests step it by hand (``Harness.advance``,
``Harness.run_until``), so every assertion is about simulated time and no
test sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sandbox_harness import Harness, scenario

from ecsop.sandbox.scenario import Scenario
from ecsop.sandbox.server import SandboxServer


@pytest.fixture
def start_sandbox() -> Iterator[Callable[..., Harness]]:
    servers: list[SandboxServer] = []

    def start(scn: Scenario | None = None, retries: int = 1) -> Harness:
        server = SandboxServer(scn or scenario()).start()
        servers.append(server)
        return Harness(server, retries)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox(start_sandbox: Callable[..., Harness]) -> Harness:
    return start_sandbox()
