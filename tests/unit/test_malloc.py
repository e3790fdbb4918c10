"""The daemon's malloc arena limit: set on glibc, the operator's MALLOC_ARENA_MAX kept."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def run(code: str, **env: str) -> str:
    """``code`` in a fresh interpreter: the limit is process-wide and set once."""
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    result = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="mallopt's arena limit is glibc's")
def test_the_limit_is_set_on_glibc() -> None:
    assert run("from ecsop.runtime.malloc import limit_arenas; print(limit_arenas())") == "True"


def test_an_operators_malloc_arena_max_is_left_alone() -> None:
    code = "from ecsop.runtime.malloc import limit_arenas; print(limit_arenas())"
    assert run(code, MALLOC_ARENA_MAX="8") == "False"
