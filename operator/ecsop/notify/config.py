"""The ``--notifications`` file: providers, routes and delivery settings, validated.

One YAML document, ``kind: NotificationConfig``, read once at start by
``ecsop run --notifications FILE``. Validated with pydantic like a release
spec (unknown fields are errors, values are not coerced) and reported the
same way, ``file:line: field: message`` (``ecsop.spec.errors`` owns the
wording), so a broken file stops the daemon before it starts rather than
losing notifications silently.

Secrets (webhook URLs, HMAC keys, tokens) are never written in the file: a
secret field is ``{env: NAME}`` or ``{file: PATH}`` (``ecsop.notify.secrets``).
The config file itself must lie outside the spec directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

from ecsop.notify.events import EventType
from ecsop.notify.secrets import BASE, ENVIRON, SPECS, Secret, SecretUrl, Url, inside
from ecsop.spec import errors as spec_errors
from ecsop.spec import yaml_reader as spec_yaml
from ecsop.spec.errors import Path_, SpecError
from ecsop.spec.loader import MAX_FILE_BYTES

API_VERSION = "ecsop.dev/v1"
KIND = "NotificationConfig"
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
REPOSITORY_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class ConfigInvalid(Exception):
    """The file has problems; each is a ``SpecError`` (file, line, field, message)."""

    def __init__(self, errors: list[SpecError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


# --- the document ------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )


class SlackProvider(_Model):
    """A Slack incoming webhook (https://api.slack.com/messaging/webhooks)."""

    name: str = Field(pattern=NAME_PATTERN, description="Names the provider in routes.")
    type: Literal["slack"]
    url: SecretUrl = Field(
        description="The incoming webhook URL, {env: ...} or {file: ...}: Slack's URL is "
        "the credential."
    )


class WebhookProvider(_Model):
    """Any HTTP endpoint: the versioned JSON payload, signed with HMAC-SHA256."""

    name: str = Field(pattern=NAME_PATTERN)
    type: Literal["webhook"]
    url: Url
    secret: Secret | None = Field(
        default=None,
        description="HMAC-SHA256 key: each request carries X-Ecsop-Signature-256 over its body.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra, non-secret request headers."
    )


class GitHubProvider(_Model):
    """Commit statuses (and, optionally, deployments) on the commit that set the spec."""

    name: str = Field(pattern=NAME_PATTERN)
    type: Literal["github"]
    token: Secret = Field(description="A token allowed to write commit statuses (and deployments).")
    repository: str | None = Field(
        default=None,
        description="owner/repo; default: repository.github, else the spec directory's "
        "git remote 'origin'.",
    )
    api_url: Url = Field(
        default=SecretStr("https://api.github.com"),
        description="GitHub's REST API; GitHub Enterprise Server: https://HOST/api/v3.",
    )
    context: str = Field(
        default="ecsop/{release}",
        min_length=1,
        max_length=255,
        description="The status context; {release} is the release name.",
    )
    deployments: bool = Field(
        default=False,
        description="Also create a GitHub deployment per rollout, with deployment statuses.",
    )
    environment: str = Field(
        default="{release}",
        min_length=1,
        max_length=255,
        description="The GitHub deployment environment; {release}, {cluster}, {service}.",
    )

    @field_validator("repository")
    @classmethod
    def _owner_repo(cls, value: str | None) -> str | None:
        if value is not None and not REPOSITORY_PATTERN.match(value):
            raise ValueError(f"{value!r} is not owner/repo")
        return value


Provider = Annotated[SlackProvider | WebhookProvider | GitHubProvider, Field(discriminator="type")]


class LabelRequirement(_Model):
    """One Kubernetes-style set-based requirement on a release's labels."""

    key: str = Field(min_length=1, max_length=316)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class Selector(_Model):
    """Which releases a route hears of, by ``metadata.labels``; empty selects every release."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelRequirement] = Field(default_factory=list)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Every ``matchLabels`` pair and every requirement holds (Kubernetes' rules)."""
        if any(labels.get(key) != value for key, value in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "In" and not (present and labels[req.key] in req.values):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


class Route(_Model):
    """Send events of ``events`` about releases ``selector`` selects to ``providers``."""

    providers: list[str] = Field(min_length=1)
    events: list[str] = Field(
        default_factory=list, description="Event types; empty or absent means every type."
    )
    selector: Selector = Field(default_factory=Selector)

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        known = [e.value for e in EventType]
        for event in events:
            if event not in known:
                raise ValueError(f"unknown event type {event!r}; known: {', '.join(known)}")
        return events


class Repository(_Model):
    """Where the spec commits live: for links in messages and for GitHub."""

    github: str | None = Field(
        default=None, description="owner/repo on GitHub; default: the git remote 'origin'."
    )
    commit_url: str | None = Field(
        default=None,
        description="Link template for a commit, with {commit}; default: GitHub's, when the "
        "repository is known.",
    )

    @field_validator("github")
    @classmethod
    def _owner_repo(cls, value: str | None) -> str | None:
        if value is not None and not REPOSITORY_PATTERN.match(value):
            raise ValueError(f"{value!r} is not owner/repo")
        return value

    @field_validator("commit_url")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and "{commit}" not in value:
            raise ValueError("must contain {commit}")
        return value


class Delivery(_Model):
    """How notifications are sent: never from a reconcile worker, never retried forever."""

    queue_size: int = Field(
        default=1000, ge=1, le=100_000, description="Deliveries waiting at most; more are dropped."
    )
    workers: int = Field(default=2, ge=1, le=32, description="Threads sending deliveries.")
    timeout_seconds: float = Field(
        default=10, gt=0, le=120, description="Per request: connect and each read."
    )
    max_attempts: int = Field(
        default=6, ge=1, le=50, description="Attempts per delivery, the first included."
    )
    initial_backoff_seconds: float = Field(default=1, gt=0, le=600)
    max_backoff_seconds: float = Field(default=60, gt=0, le=3600)
    max_retry_after_seconds: float = Field(
        default=300,
        gt=0,
        le=3600,
        description="A Retry-After longer than this gives up the delivery instead of waiting.",
    )


class NotificationConfig(_Model):
    api_version: Literal["ecsop.dev/v1"]
    kind: Literal["NotificationConfig"]
    repository: Repository = Field(default_factory=Repository)
    delivery: Delivery = Field(default_factory=Delivery)
    providers: list[Provider] = Field(min_length=1)
    routes: list[Route] = Field(
        default_factory=list, description="Absent or empty: every provider hears every event."
    )


# --- loading -----------------------------------------------------------------------------


def load(
    path: Path, *, specs: Path | None = None, environ: Mapping[str, str] | None = None
) -> NotificationConfig:
    """Read and validate ``path``; raises ``ConfigInvalid`` listing every problem."""
    display = str(path)
    if specs is not None and inside(path, specs):
        raise ConfigInvalid(
            [SpecError(display, None, "", f"must not be inside the spec directory {specs}")]
        )
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigInvalid([SpecError(display, None, "", "file is larger than 1 MiB")])
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigInvalid([SpecError(display, None, "", f"cannot read file: {exc}")]) from None
    try:
        found = [pair for pair in spec_yaml.documents(text) if pair[1] is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigInvalid(
            [SpecError(display, line, "", f"YAML syntax error: {problem}")]
        ) from None
    if len(found) != 1 or not isinstance(found[0][1], dict):
        raise ConfigInvalid([SpecError(display, None, "", f"must hold exactly one {KIND} mapping")])
    node, document = found[0]
    lines, duplicates = spec_yaml.positions(node)
    if duplicates:
        raise ConfigInvalid([SpecError(display, ln, f, m) for ln, f, m in duplicates])
    context = {
        ENVIRON: os.environ if environ is None else environ,
        BASE: path.parent,
        SPECS: specs,
    }
    doc_line = node.start_mark.line + 1
    try:
        config = NotificationConfig.model_validate(document, context=context)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = _without_tags(tuple(error["loc"]))
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc = (*loc, "type")
                message = "must be slack, webhook or github"
            else:
                message = spec_errors.message(error, loc, NotificationConfig)
            line = spec_errors.line_of(loc, lines, doc_line)
            problems.append(SpecError(display, line, spec_errors.dotted(loc), message))
        raise ConfigInvalid(sorted(problems)) from None
    problems = [
        SpecError(display, spec_errors.line_of(loc, lines, doc_line), spec_errors.dotted(loc), m)
        for loc, m in _cross_checks(config)
    ]
    if problems:
        raise ConfigInvalid(problems)
    return config


def _without_tags(loc: Path_) -> Path_:
    """pydantic names a discriminated union's member in the path (``providers.0.slack.url``)."""
    tags = {"slack", "webhook", "github"}
    if len(loc) > 2 and loc[0] == "providers" and loc[2] in tags:
        return (*loc[:2], *loc[3:])
    return loc


def _cross_checks(config: NotificationConfig) -> list[tuple[Path_, str]]:
    problems: list[tuple[Path_, str]] = []
    seen: dict[str, int] = {}
    for index, provider in enumerate(config.providers):
        if provider.name in seen:
            problems.append(
                (
                    ("providers", index, "name"),
                    f"{provider.name!r} is also providers[{seen[provider.name]}]",
                )
            )
        seen.setdefault(provider.name, index)
    for index, route in enumerate(config.routes):
        for position, name in enumerate(route.providers):
            if name not in seen:
                known = ", ".join(seen)
                problems.append(
                    (
                        ("routes", index, "providers", position),
                        f"no provider named {name!r} ({known})",
                    )
                )
    return problems
