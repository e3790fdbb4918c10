"""The configuration every model of the spec shares: what users write is checked, not guessed.

Unknown fields are errors (a typo is never silently ignored), YAML types are
not coerced (``"3"`` is not 3), models are frozen (a loaded spec is shared by
worker threads without copies), and fields are written in camelCase while
Python reads snake_case.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class StrictModel(BaseModel):
    """The spec's model configuration: strict, frozen, camelCase, no unknown fields."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )
