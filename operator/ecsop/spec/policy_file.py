"""The directory-level policy file, ``ecsop-policy.yaml``: its ReleasePolicy documents.

Only that file (``.yaml`` or ``.yml``, at any level of the spec directory) may
hold ReleasePolicy documents, and it holds nothing else; each is validated
like a release, with file:line errors, and two policies of one name are both
errors. ``ecsop.spec.loader`` reads the files and calls ``read`` per document
and ``unique`` once per directory; problems come back as (line, field,
message) for it to report.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ecsop.spec import errors as spec_errors
from ecsop.spec.release_flow import POLICY_FILES, POLICY_KIND, ReleasePolicy

Problem = tuple[int | None, str, str]
"""(line, dotted field, message) in one file."""


@dataclass(frozen=True)
class LoadedPolicy:
    """A valid ReleasePolicy document of the policy file."""

    policy: ReleasePolicy
    file: str
    line: int


def is_policy_file(display: str) -> bool:
    """Whether ``display`` names the directory-level policy file (``ecsop-policy.yaml``)."""
    return Path(display).name in POLICY_FILES


def read(
    document: dict[str, Any],
    display: str,
    lines: dict[spec_errors.Path_, int],
    doc_line: int,
) -> tuple[LoadedPolicy | None, list[Problem]]:
    """A ReleasePolicy document, validated; only the policy file may hold them."""
    if not is_policy_file(display):
        message = (
            f"{POLICY_KIND} documents belong in the directory-level policy file "
            f"({' or '.join(POLICY_FILES)})"
        )
        return None, [(doc_line, "kind", message)]
    try:
        policy = ReleasePolicy.model_validate(document)
    except ValidationError as exc:
        return None, list(spec_errors.field_errors(exc, lines, doc_line, root=ReleasePolicy))
    return LoadedPolicy(policy, display, doc_line), []


def unique(
    policies: list[LoadedPolicy],
) -> tuple[tuple[LoadedPolicy, ...], list[tuple[str, int, str, str]]]:
    """One ReleasePolicy per name; both sides of a clash are (file, line, field, message)."""
    by_name: dict[str, list[LoadedPolicy]] = defaultdict(list)
    for loaded in policies:
        by_name[loaded.policy.name].append(loaded)
    problems = []
    for name, group in by_name.items():
        if len(group) > 1:
            for loaded in group:
                others = ", ".join(f"{o.file}:{o.line}" for o in group if o is not loaded)
                message = f"policy name {name!r} is also defined at {others}"
                problems.append((loaded.file, loaded.line, "metadata.name", message))
    kept = tuple(p for p in policies if len(by_name[p.policy.name]) == 1)
    return kept, problems
