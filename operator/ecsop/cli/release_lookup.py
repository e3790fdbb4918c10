"""Finding the release a one-shot command names, and saying which exist when it is not there."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the commands import the loader lazily, to start fast
    from ecsop.spec.loader import SpecSet


def unknown_release(loaded: SpecSet, specs: Path, name: str) -> str:
    """Why ``name`` cannot be acted on: no valid release has it; the ones that exist."""
    known = ", ".join(sorted(loaded.releases)) or "none"
    return f"no valid release named {name!r} in {specs} (releases: {known})"
