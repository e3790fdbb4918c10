"""Reading a spec directory into releases and per-file errors.

The directory is the desired state, kept in sync with git by someone else
(git-sync, a CI checkout, a mounted ConfigMap). This module turns it into
valid ``ServiceRelease`` objects plus one ``SpecError`` per problem, each
naming file, line and field, so that a person can fix it and so that one
broken file never hides the releases of the others. It never raises on bad
input: whatever the bytes on disk, the caller gets a result.

Callers: ``ecsop validate`` / ``plan`` (once) and the controller (on every
change the watcher reports). Watching itself lives in ``ecsop.watcher``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import subprocess
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ecsop.spec import errors as spec_errors
from ecsop.spec import files as spec_files
from ecsop.spec import model as spec
from ecsop.spec import policy_file as policy_file_
from ecsop.spec import references
from ecsop.spec import yaml_reader as spec_yaml
from ecsop.spec.errors import SpecError
from ecsop.spec.model import ServiceIdentity, ServiceRelease
from ecsop.spec.policy_file import LoadedPolicy, is_policy_file
from ecsop.spec.quoting import clip
from ecsop.spec.release_flow import POLICY_KIND

MAX_FILE_BYTES = 1024 * 1024
"""Spec files above 1 MiB are refused: no release needs that, a generated blob might."""
MAX_MESSAGE = 300
"""Characters of a YAML parser message kept (it may quote the offending text)."""


@dataclass(frozen=True)
class LoadedRelease:
    """A valid release and where it came from."""

    release: ServiceRelease
    file: str
    line: int
    region: str
    """``spec.region``, or the daemon's default region when the spec does not say."""
    account: str = ""
    """The daemon's own account, for releases whose spec names none ("" when unknown)."""
    field_lines: dict[str, int] = dataclasses.field(default_factory=dict, compare=False, repr=False)
    """Line of each entry of ``spec.dependsOn`` and ``spec.promotion.from`` (dotted path)."""

    @functools.cached_property
    def name(self) -> str:
        return self.release.name

    # Cached: every reading checks every release's references (``spec.references``), and
    # reaching them through the model costs microseconds each, at 10,000 releases a tenth
    # of a second per spec change.
    @functools.cached_property
    def depends_on(self) -> list[str]:
        return self.release.spec.depends_on

    @functools.cached_property
    def promoted_from(self) -> list[str]:
        promotion = self.release.spec.promotion
        return promotion.from_ if promotion else []

    @functools.cached_property
    def target(self) -> ServiceIdentity:
        """The ECS service this release manages, names and ARNs normalised (computed once)."""
        return spec.identity(self.release.spec, self.region, self.account)


@dataclass(frozen=True)
class SpecSet:
    """The whole directory, read once: what the daemon reconciles toward."""

    releases: dict[str, LoadedRelease]
    errors: list[SpecError]
    files: int
    commit: str | None
    policies: tuple[LoadedPolicy, ...] = ()
    """The ReleasePolicy documents of ``ecsop-policy.yaml`` (deploy windows by label)."""

    @property
    def policy_errors(self) -> list[SpecError]:
        """Problems of the policy file: while any stands, no window is known for sure."""
        return [e for e in self.errors if is_policy_file(e.file)]

    @property
    def invalid_releases(self) -> dict[str, list[SpecError]]:
        """Errors of documents that still name their release, by release name."""
        by_name: dict[str, list[SpecError]] = defaultdict(list)
        for error in self.errors:
            if error.release:
                by_name[error.release].append(error)
        return dict(by_name)


class ParseCache:
    """Parsed files by content, so a resync re-reads bytes but re-parses only what changed.

    Parsing and validating is most of the cost of a load; a daemon with a
    thousand releases re-reads its directory every resync in case a file event
    was missed. Keyed by content hash (not mtime, which some filesystems keep
    to the second), display name and options. Not thread-safe: one per caller.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str, bool], _Parsed] = {}
        self._used: set[tuple[str, str, str, bool]] = set()

    def get(self, key: tuple[str, str, str, bool]) -> _Parsed | None:
        self._used.add(key)
        return self._entries.get(key)

    def put(self, key: tuple[str, str, str, bool], value: _Parsed) -> None:
        self._used.add(key)
        self._entries[key] = value

    def sweep(self) -> None:
        """Drop entries not used since the last sweep (deleted or changed files)."""
        self._entries = {k: v for k, v in self._entries.items() if k in self._used}
        self._used = set()


_Parsed = tuple[list["LoadedRelease"], list[SpecError], list[LoadedPolicy]]


def load(
    paths: Sequence[str | os.PathLike[str]],
    *,
    default_region: str = "",
    allow_mutable_tags: bool = False,
    cache: ParseCache | None = None,
    default_account: str = "",
) -> SpecSet:
    """Read every spec file under ``paths`` (directories or single files).

    Cross-document rules (unique names, one release per ECS service) apply
    across all the paths together, as they will for the daemon.
    ``default_account`` is the daemon's own account (STS GetCallerIdentity),
    for releases whose spec names none; "" when it is not known (``validate``).
    """
    candidates: list[LoadedRelease] = []
    policies: list[LoadedPolicy] = []
    errors: list[SpecError] = []
    files = 0
    # Each path is resolved once: git-sync may swap its symlink mid-load, and
    # the files read and the commit reported must come from the same checkout.
    roots = [
        (Path(given), spec_files.resolved(Path(given), spec_files.shown(Path(given)), errors))
        for given in paths
    ]
    for given, root in roots:
        if root is None:
            continue
        for display, real in spec_files.under(given, root, errors):
            files += 1
            found, problems, policed = load_file(
                real,
                display,
                default_region=default_region,
                allow_mutable_tags=allow_mutable_tags,
                cache=cache,
            )
            candidates.extend(replace(c, account=default_account) for c in found)
            policies.extend(policed)
            errors.extend(problems)
    if cache is not None:
        cache.sweep()
    releases, conflicts = _unique(candidates)
    names = {c.name for c in candidates}
    root = roots[0][1] if roots else None
    return assemble(releases, names, [*errors, *conflicts], files, root, policies)


def assemble(
    releases: dict[str, LoadedRelease],
    names: set[str],
    errors: Sequence[SpecError],
    files: int,
    root: Path | None,
    policies: Sequence[LoadedPolicy],
) -> SpecSet:
    """The spec set of the releases no conflict refused (``names``: every release of the
    directory, refused or not) with the rules that span releases applied (references,
    one policy per name), and the commit checked out at ``root``."""
    known = names | {e.release for e in errors if e.release}
    releases, broken = _references(releases, known)
    unique_policies, clashes = policy_file_.unique(list(policies))
    found = [*errors, *broken, *(SpecError(file, line, f, m) for file, line, f, m in clashes)]
    return SpecSet(
        releases=releases,
        errors=sorted(found),
        files=files,
        commit=git_commit(root) if root is not None else None,
        policies=unique_policies,
    )


def load_file(
    path: Path,
    display: str,
    *,
    default_region: str = "",
    allow_mutable_tags: bool = False,
    cache: ParseCache | None = None,
) -> _Parsed:
    """Read one file: its valid releases, the errors of its other documents, its policies.

    Never raises: whatever the file holds, its problems come back as ``SpecError``.
    """
    try:
        return _load_file(path, display, default_region, allow_mutable_tags, cache)
    except Exception as exc:  # a bug of ours must cost one file, never the whole load
        what = f"{type(exc).__name__}: {clip(str(exc), MAX_MESSAGE)}"
        return [], [SpecError(display, None, "", f"cannot be read (internal error {what})")], []


def _load_file(
    path: Path,
    display: str,
    default_region: str,
    allow_mutable_tags: bool,
    cache: ParseCache | None,
) -> _Parsed:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            problem = f"file is {size} bytes; the limit is 1 MiB"
            return [], [SpecError(display, None, "", problem)], []
        data = path.read_bytes()
    except OSError as exc:
        return [], [SpecError(display, None, "", f"cannot read file: {exc.strerror or exc}")], []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start : exc.start + 1].hex()
        return [], [SpecError(display, line, "", f"file is not UTF-8 text (byte 0x{byte})")], []
    if cache is None:
        return _parse(text, display, default_region, allow_mutable_tags)
    key = (hashlib.sha256(data).hexdigest(), display, default_region, allow_mutable_tags)
    parsed = cache.get(key)
    if parsed is None:
        parsed = _parse(text, display, default_region, allow_mutable_tags)
        cache.put(key, parsed)
    return list(parsed[0]), list(parsed[1]), list(parsed[2])


def _parse(
    text: str, display: str, default_region: str, allow_mutable_tags: bool
) -> _Parsed:
    releases: list[LoadedRelease] = []
    policies: list[LoadedPolicy] = []
    errors: list[SpecError] = []
    documents = 0
    policy_file = is_policy_file(display)
    context = {spec.ALLOW_MUTABLE_TAGS: allow_mutable_tags}
    try:
        for node, document in spec_yaml.documents(text):
            if document is None:
                continue  # empty document (a stray '---'), as kubectl treats it
            documents += 1
            lines, duplicates = spec_yaml.positions(node)
            doc_line = node.start_mark.line + 1
            name = _declared_name(document)
            if duplicates:
                errors.extend(SpecError(display, ln, f, m, name) for ln, f, m in duplicates)
                continue
            if not isinstance(document, dict):
                kind = type(document).__name__
                expected = POLICY_KIND if policy_file else "ServiceRelease"
                msg = f"a document must be a {expected} mapping, not a {kind}"
                errors.append(SpecError(display, doc_line, "", msg))
                continue
            if policy_file or document.get("kind") == POLICY_KIND:
                policy, problems = policy_file_.read(document, display, lines, doc_line)
                errors.extend(SpecError(display, line, f, m) for line, f, m in problems)
                if policy is not None:
                    policies.append(policy)
                continue
            try:
                release = ServiceRelease.model_validate(document, context=context)
            except ValidationError as exc:
                errors.extend(
                    SpecError(display, line, field, message, name)
                    for line, field, message in spec_errors.field_errors(exc, lines, doc_line)
                )
                continue
            region = release.spec.region or default_region
            field_lines = {
                spec_errors.dotted(path): line
                for path, line in lines.items()
                if path[:2] in (("spec", "dependsOn"), ("spec", "promotion"))
            }
            releases.append(LoadedRelease(release, display, doc_line, region, "", field_lines))
    except yaml.YAMLError as exc:
        return [], [_yaml_error(exc, display)], []
    except RecursionError:
        return [], [SpecError(display, None, "", "YAML nesting is too deep")], []
    if documents == 0 and not errors:
        kind = POLICY_KIND if policy_file else "ServiceRelease"
        errors.append(SpecError(display, None, "", f"file holds no {kind} document"))
    return releases, errors, policies


def git_commit(path: Path) -> str | None:
    """The commit checked out at ``path``, when it lies in a git work tree.

    ``safe.directory`` is widened because git-sync's checkout is usually owned
    by another user than the daemon, and git refuses such trees otherwise.
    """
    try:
        directory = path.resolve()  # a no-op for ``load``, which passes a resolved root
        if not directory.is_dir():
            directory = directory.parent
        result = subprocess.run(
            ["git", "-c", "safe.directory=*", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, RuntimeError, subprocess.SubprocessError):  # RuntimeError: symlink loop
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) >= 40 else None


def _yaml_error(exc: yaml.YAMLError, display: str) -> SpecError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    detail = " ".join(str(p) for p in (context, problem) if p) or str(exc)
    if isinstance(exc, spec_yaml.ExpansionError):
        return SpecError(display, line, "", clip(detail, MAX_MESSAGE))
    return SpecError(display, line, "", f"YAML syntax error: {clip(detail, MAX_MESSAGE)}")


def _declared_name(document: Any) -> str | None:
    if isinstance(document, dict):
        metadata = document.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
            name: str = metadata["name"]
            return name
    return None


def _same_account(one: LoadedRelease, other: LoadedRelease) -> bool:
    a, b = one.target.account, other.target.account
    return a == b or not a or not b


Place = tuple[str, str, str]
"""(region, cluster, service) of a release's target: where two releases may clash."""


def place_of(loaded: LoadedRelease) -> Place:
    target = loaded.target
    return (target.region, target.cluster, target.service)


def _unique(
    candidates: Sequence[LoadedRelease],
) -> tuple[dict[str, LoadedRelease], list[SpecError]]:
    """Apply the directory-wide rules: one document per name, one release per service.

    Both sides of a conflict are reported and neither is managed: picking one
    would let file order decide which images run in production.
    """
    errors: list[SpecError] = []
    by_name: dict[str, list[LoadedRelease]] = defaultdict(list)
    by_place: dict[Place, list[LoadedRelease]] = defaultdict(list)
    for loaded in candidates:
        by_name[loaded.name].append(loaded)
        by_place[place_of(loaded)].append(loaded)
    releases: dict[str, LoadedRelease] = {}
    for loaded in candidates:
        found = conflicts(loaded, by_name[loaded.name], by_place[place_of(loaded)])
        if found:
            errors.extend(found)
        else:
            releases[loaded.name] = loaded
    return releases, errors


def conflicts(
    loaded: LoadedRelease,
    same_name: Sequence[LoadedRelease],
    same_place: Sequence[LoadedRelease],
) -> list[SpecError]:
    """Why ``loaded`` may not be managed, given every candidate of its name and its place."""
    errors: list[SpecError] = []
    name = loaded.name
    if len(same_name) > 1:
        others = ", ".join(f"{o.file}:{o.line}" for o in same_name if o is not loaded)
        msg = f"release name {name!r} is also defined at {others}"
        errors.append(SpecError(loaded.file, loaded.line, "metadata.name", msg, name))
    # Same names in two known accounts are two services; an account not known
    # (the daemon's own, offline) may be either, so it conflicts with both.
    clashing = [o for o in same_place if o is not loaded and _same_account(o, loaded)]
    if clashing:
        others = ", ".join(f"{o.name} ({o.file}:{o.line})" for o in clashing)
        msg = f"service {loaded.target} is also managed by {others}"
        errors.append(SpecError(loaded.file, loaded.line, "spec.service", msg, name))
    return errors


def _references(
    releases: dict[str, LoadedRelease], known: set[str]
) -> tuple[dict[str, LoadedRelease], list[SpecError]]:
    """``dependsOn`` and ``promotion.from`` name releases of the directory, without a cycle."""
    errors: list[SpecError] = []
    rejected: set[str] = set()
    for loaded, field, message in references.check(releases, known):
        found = releases[loaded.name]
        line = found.field_lines.get(field, found.line)
        errors.append(SpecError(found.file, line, field, message, found.name))
        rejected.add(found.name)
    return {n: r for n, r in releases.items() if n not in rejected}, errors
