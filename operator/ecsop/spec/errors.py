"""Turning pydantic's validation errors into messages a spec author understands.

pydantic reports ``('spec', 'rollout', 'bakeSeconds') int_type``; a person
needs "spec.rollout.bakeSeconds: must be an integer (got str '60')" and, for a
typo, the fields that are allowed there. ``ecsop.spec.loader`` attaches file
and line; this module owns the wording and ``SpecError``, the shape of a problem.

A spec value is only ever quoted through ``quoting.quote`` (a bounded ``repr``).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ecsop.spec.model import ServiceRelease
from ecsop.spec.quoting import clip, quote, redacted

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class SpecError:
    """One problem in the spec directory, as a person needs it to fix it."""

    file: str
    line: int | None
    field: str
    message: str
    release: str | None = dataclasses.field(default=None, compare=False)
    """The release name, when the broken document still says which release it is."""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )



def field_errors(
    exc: ValidationError,
    lines: dict[Path_, int],
    doc_line: int,
    root: type[BaseModel] = ServiceRelease,
) -> Iterator[tuple[int, str, str]]:
    """(line, dotted field, message) for each problem pydantic found in a ``root`` document."""
    for error in exc.errors(include_url=False):
        loc: Path_ = tuple(error["loc"])
        yield line_of(loc, lines, doc_line), dotted(loc), message(error, loc, root)


def line_of(loc: Path_, lines: dict[Path_, int], doc_line: int) -> int:
    """The line of the deepest part of ``loc`` that exists in the document."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return doc_line


def dotted(loc: Path_) -> str:
    """``("spec", "alarms", 0)`` -> ``spec.alarms[0]``."""
    out = ""
    for part in loc:
        name = clip(str(part))
        out += f"[{part}]" if isinstance(part, int) else (f".{name}" if out else name)
    return out


_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "list_type": "a list",
    "model_type": "a mapping",
    "int_from_float": "an integer",
}
_PATTERN_HINTS = {
    "metadata.name": "lowercase letters, digits and '-', starting and ending with a "
    "letter or digit, at most 63 characters",
    "spec.roleArn": "an IAM role ARN: arn:aws:iam::<12-digit account>:role/<name>",
    "spec.region": "an AWS region such as us-east-1",
}


def message(error: Any, loc: Path_, model: type[BaseModel] = ServiceRelease) -> str:
    """What is wrong with the field at ``loc``, in the words a spec author understands."""
    kind: str = error["type"]
    given = error.get("input")
    if loc and loc[-1] == "url" and isinstance(given, str):
        given = redacted(given)  # an HTTP check's URL may carry credentials
    if kind == "extra_forbidden":
        allowed = _allowed_fields(loc[:-1], model)
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return f"unknown field {quote(loc[-1])}{hint}"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"must be {expected} (got {quote(given)})"
    if kind in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[kind]} (got {_describe(given)})"
    if kind == "string_pattern_mismatch":
        hint = _PATTERN_HINTS.get(dotted(loc), "the documented format")
        return f"{quote(given)} is not valid: must be {hint}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    return str(error["msg"]).replace("Input should be", "must be") + f" (got {_describe(given)})"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {quote(value)}"


def _allowed_fields(loc: Path_, model: type[BaseModel]) -> list[str]:
    """The field names a mapping at ``loc`` accepts, read from the pydantic models."""
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list of models: the list's model applies
        nested = None
        for name, info in model.model_fields.items():
            if part in (name, info.alias):
                annotation = info.annotation
                if typing.get_origin(annotation) is list:
                    annotation = typing.get_args(annotation)[0]
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    nested = annotation
        if nested is None:
            return []
        model = nested
    return [info.alias or name for name, info in model.model_fields.items()]
