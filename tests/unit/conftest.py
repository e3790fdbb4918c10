"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from controller_world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    """A Controller over an in-memory ECS, with its own metrics registry and spec directory."""
    return World(tmp_path)
