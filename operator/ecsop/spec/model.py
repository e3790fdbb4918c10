"""The release spec: the pydantic models of a ``ServiceRelease`` and its fingerprint.

This module is the contract users write against (``docs/design.md``, "The
release spec"). Everything here is pure: it validates one already-parsed YAML
document. Reading files, line numbers and cross-document rules (duplicate
names, two releases on one service) belong to ``ecsop.source``.

Field names are the camelCase ones users write; Python code reads the
snake_case attributes. Models are frozen so a loaded spec can be shared across
worker threads without copies.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from ecsop.spec.analysis import Analysis, distinct_names
from ecsop.spec.quoting import quote
from ecsop.spec.release_flow import DeployWindow, Promotion, release_names

API_VERSION = "ecsop.dev/v1"
KIND = "ServiceRelease"

ALLOW_MUTABLE_TAGS = "allow_mutable_tags"
"""Key of the pydantic validation context that relaxes digest pinning."""

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
DIGEST_PATTERN = re.compile(r"@sha256:[0-9a-f]{64}$")
_DIGEST_LIKE = re.compile(r"@[A-Za-z0-9_+.-]+:")
_IMAGE_PATTERN = re.compile(r"^[^\s@]+(@[^\s@]+)?$")
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$"
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d+$"


def _check_image(image: str, info: ValidationInfo) -> str:
    allow_tags = bool((info.context or {}).get(ALLOW_MUTABLE_TAGS, False))
    problem = image_problem(image, allow_mutable_tags=allow_tags)
    if problem:
        raise ValueError(problem)
    return image


Image = Annotated[str, AfterValidator(_check_image)]
"""An image reference, pinned by digest unless the validation context allows tags."""


class _Model(BaseModel):
    """Shared configuration: unknown fields are errors, YAML types are not coerced."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )


class Metadata(_Model):
    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=63,
        description="Unique release name in the spec directory: lowercase letters, digits "
        "and '-', at most 63 characters, starting and ending with a letter or digit.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Free-form labels, shown in status and logs."
    )


CHECK_ENV_PREFIX = "ECSOP_CHECK_"
"""Environment variables an HTTP check may read start with this: set for checks, nothing else."""
_CHECK_ENV = re.compile(r"^ECSOP_CHECK_[A-Z0-9_]+$")
_CHECK_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
"""An HTTP header name: RFC 9110's ``token``."""
_FRAMING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_NO_SECRETS_HERE = (
    "never write a secret in the spec: name where the daemon reads it, "
    f"valueFrom: {{env: {CHECK_ENV_PREFIX}NAME}} or valueFrom: {{file: NAME}}"
)


class SecretFrom(_Model):
    """Where the daemon reads a secret when it probes; exactly one of ``env`` and ``file``.

    The spec only names the secret. It is read at every request, so a rotated
    token is used at once, and a missing one makes the check unknown (never
    green), naming the variable or file, never the value.
    """

    env: str | None = Field(
        default=None,
        pattern=_CHECK_ENV.pattern,
        description="An environment variable of the daemon whose name starts with "
        "ECSOP_CHECK_ (so a spec can never send the daemon's own credentials anywhere).",
    )
    file: str | None = Field(
        default=None,
        pattern=_CHECK_FILE.pattern,
        description="A file name (no directory) in the daemon's check-secrets directory, "
        "/etc/ecsop/check-secrets (e.g. a mounted Kubernetes Secret); a trailing newline "
        "is ignored.",
    )

    @field_validator("env", mode="before")
    @classmethod
    def _env_name(cls, env: Any) -> Any:
        if isinstance(env, str) and not _CHECK_ENV.match(env):
            raise ValueError(
                f"{quote(env)}: checks read only variables named {CHECK_ENV_PREFIX}* "
                f"(e.g. {CHECK_ENV_PREFIX}SMOKE_TOKEN), never the daemon's own"
            )
        return env

    @field_validator("file", mode="before")
    @classmethod
    def _file_name(cls, file: Any) -> Any:
        if isinstance(file, str) and not _CHECK_FILE.match(file):
            raise ValueError(
                f"{quote(file)}: a file name in the daemon's check-secrets directory, "
                "without '/' (e.g. smoke-token)"
            )
        return file

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretFrom:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file")
        return self

    def __str__(self) -> str:
        """How messages name it: never its value, which only the daemon reads."""
        return f"environment variable {self.env}" if self.env else f"secret file {self.file}"


class HttpHeader(_Model):
    """A request header whose value the daemon reads from a variable or a file."""

    name: str = Field(
        pattern=_HEADER_NAME.pattern, description="Header name, e.g. Authorization or X-Api-Key."
    )
    value_from: SecretFrom = Field(description="Where the daemon reads the header's value.")

    @model_validator(mode="before")
    @classmethod
    def _no_literal_value(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" in data:
            raise ValueError(f"a header has no literal value: {_NO_SECRETS_HERE}")
        return data

    @field_validator("name", mode="before")
    @classmethod
    def _header_name(cls, name: Any) -> Any:
        if isinstance(name, str) and not _HEADER_NAME.match(name):
            raise ValueError(f"{quote(name)} is not an HTTP header name")
        if isinstance(name, str) and name.lower() in _FRAMING_HEADERS:
            raise ValueError(f"{name} is set by the HTTP client, not by a check")
        return name


class BasicAuth(_Model):
    """HTTP basic authentication; both parts are read by the daemon, never written here."""

    username_from: SecretFrom = Field(description="Where the daemon reads the user name.")
    password_from: SecretFrom = Field(description="Where the daemon reads the password.")


class HttpCheck(_Model):
    """An HTTP request that must answer ``expectStatus`` while a rollout runs and bakes.

    Probed from the daemon (in a thread pool of its own, never from a reconcile
    worker) every ``intervalSeconds`` and only while the release is rolling out
    or baking; ``failuresAllowed`` consecutive failures are tolerated, one more
    fails the rollout. Redirects are not followed: a 3xx is an answer.
    Credentials never appear in the spec: ``headers`` and ``basicAuth`` name
    where the daemon reads them, and the URL may not carry any.
    """

    url: str = Field(
        min_length=8,
        max_length=2048,
        pattern=r"^https?://",
        description="http:// or https:// URL to request with GET, e.g. a smoke-test endpoint "
        "behind the service's load balancer. No user:password@: use basicAuth or headers.",
    )
    headers: list[HttpHeader] = Field(
        default_factory=list,
        max_length=10,
        description="Request headers whose values the daemon reads at probe time.",
    )
    basic_auth: BasicAuth | None = Field(
        default=None, description="HTTP basic authentication, read by the daemon at probe time."
    )
    expect_status: int = Field(
        default=200, ge=100, le=599, description="The HTTP status a passing check answers."
    )
    timeout_seconds: float = Field(
        default=5,
        gt=0,
        le=60,
        description="Give up on one request (connect and response headers) after this long; "
        "a timeout is a failure.",
    )
    interval_seconds: float = Field(
        default=10, ge=1, le=3600, description="Seconds between the starts of two requests."
    )
    failures_allowed: int = Field(
        default=2,
        ge=0,
        le=100,
        description="Consecutive failures tolerated; one more fails the rollout.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError as exc:
            raise ValueError(f"url cannot be parsed: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an absolute http:// or https:// URL with a host")
        if any(c.isspace() for c in url):
            raise ValueError("url must not contain whitespace")
        if "@" in parts.netloc:
            raise ValueError(
                "url must not carry credentials (user:password@host): the HTTP client "
                "cannot send them and they would be shown in logs and status; use "
                "basicAuth: {usernameFrom: ..., passwordFrom: ...} or a header whose "
                "valueFrom names an environment variable or file of the daemon"
            )
        try:
            parts.port  # noqa: B018 -- raises on a port outside 0-65535
        except ValueError as exc:
            raise ValueError(f"url has an invalid port: {exc}") from None
        return url

    @model_validator(mode="after")
    def _distinct_headers(self) -> HttpCheck:
        names = [header.name.lower() for header in self.headers]
        if len(set(names)) != len(names):
            raise ValueError("headers must not repeat a name")
        if self.basic_auth is not None and "authorization" in names:
            raise ValueError("basicAuth sets the Authorization header: do not give both")
        return self


def _tenths(value: float) -> float:
    """ECS takes traffic percentages in multiples of 0.1."""
    if abs(value * 10 - round(value * 10)) > 1e-9:
        raise ValueError(f"{value} is not a multiple of 0.1")
    return value


class TestTraffic(_Model):
    """Checks green must pass on the test listener before any production traffic reaches it.

    ecsop pauses the service deployment after ECS shifts test traffic (a ``PAUSE``
    lifecycle hook at ``POST_TEST_TRAFFIC_SHIFT``), runs these checks, then lets ECS
    continue, or rolls back.
    """

    __test__ = False  # not a pytest test class, whatever its name

    http_checks: list[HttpCheck] = Field(
        min_length=1,
        max_length=10,
        description="HTTP requests to the test listener that green must answer as expected.",
    )
    passes_required: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Consecutive passes each check needs before production traffic may move.",
    )
    timeout_minutes: int = Field(
        default=30,
        ge=1,
        le=20160,
        description="If the checks have not been judged this long after test traffic moved "
        "(ecsop down, say), ECS rolls back by itself.",
    )


class BlueGreen(_Model):
    bake_minutes: int = Field(
        default=10,
        ge=0,
        le=1440,
        description="After production traffic moved to green, blue is kept this long for an "
        "instant rollback (ECS bakeTimeInMinutes).",
    )
    test_traffic: TestTraffic | None = Field(
        default=None, description="Judge green on the test listener before production moves."
    )


class Canary(_Model):
    percent: Annotated[float, AfterValidator(_tenths)] = Field(
        default=5.0,
        ge=0.1,
        le=100.0,
        description="Share of production traffic green gets first (ECS canaryPercent, "
        "multiples of 0.1).",
    )
    bake_minutes: int = Field(
        default=10,
        ge=0,
        le=1440,
        description="How long the canary runs before the rest of the traffic moves "
        "(ECS canaryBakeTimeInMinutes).",
    )


class Linear(_Model):
    step_percent: Annotated[float, AfterValidator(_tenths)] = Field(
        default=10.0,
        ge=3.0,
        le=100.0,
        description="Share of production traffic moved per step (ECS stepPercent, multiples "
        "of 0.1).",
    )
    step_bake_minutes: int = Field(
        default=6,
        ge=0,
        le=1440,
        description="Wait between steps (ECS stepBakeTimeInMinutes).",
    )


class Rolling(_Model):
    """ECS's rolling update, made explicit."""


_STRATEGIES = ("rolling", "blue_green", "canary", "linear")


class Strategy(_Model):
    """How ECS moves traffic to the new revision: exactly one of the four."""

    rolling: Rolling | None = None
    blue_green: BlueGreen | None = None
    canary: Canary | None = None
    linear: Linear | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Strategy:
        chosen = [name for name in _STRATEGIES if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "strategy takes exactly one of rolling, blueGreen, canary, linear"
                + (f" (got {', '.join(to_camel(c) for c in chosen)})" if chosen else "")
            )
        return self

    @property
    def name(self) -> str:
        """ECS's name of the strategy: ROLLING, BLUE_GREEN, CANARY or LINEAR."""
        for name in _STRATEGIES:
            if getattr(self, name) is not None:
                return name.upper()
        raise AssertionError("validated: exactly one")

    @property
    def shifts_traffic(self) -> bool:
        """Blue/green, canary and linear need the load balancer's advanced configuration."""
        return self.rolling is None


class Rollout(_Model):
    """How a new revision is watched, and when it is declared good or failed."""

    timeout_seconds: int = Field(
        default=900,
        ge=30,
        le=86400,
        description="Roll back when the rollout has not completed (and baked) this many "
        "seconds after its deployment was created.",
    )
    bake_seconds: int = Field(
        default=60,
        ge=0,
        le=86400,
        description="After ECS reports COMPLETED, every health gate must stay green this "
        "long before the revision is recorded as last-good.",
    )
    max_failed_tasks: int = Field(
        default=1,
        ge=0,
        description="Roll back when the new deployment's failedTasks goes above this "
        "number; independent of the ECS deployment circuit breaker.",
    )
    alarms: list[str] = Field(
        default_factory=list,
        description="CloudWatch alarm names that must not be in ALARM during rollout and bake.",
    )
    target_health: bool | None = Field(
        default=None,
        description="Require the new tasks to be healthy in their load balancer target "
        "groups. Default: on when the service has load balancers.",
    )
    http_checks: list[HttpCheck] = Field(
        default_factory=list,
        max_length=10,
        description="HTTP requests that must keep answering as expected during rollout and bake.",
    )
    strategy: Strategy | None = Field(
        default=None,
        description="How ECS moves traffic: rolling, blueGreen, canary or linear. Absent: the "
        "service's own deployment configuration is left alone.",
    )
    analysis: Annotated[list[Analysis], AfterValidator(distinct_names)] = Field(
        default_factory=list,
        max_length=10,
        description="Metric queries (Prometheus or CloudWatch) that must keep passing during "
        "rollout and bake; a failing one rolls back (reason analysis).",
    )
    approval: Literal["none", "manual"] = Field(
        default="none",
        description="manual: a new release (fingerprint) waits until `ecsop approve NAME` "
        "records the approval of exactly that fingerprint. Rollbacks never wait.",
    )

    @field_validator("alarms")
    @classmethod
    def _alarm_names(cls, alarms: list[str]) -> list[str]:
        for alarm in alarms:
            if not alarm or len(alarm) > 255:
                raise ValueError("alarm names are 1 to 255 characters")
        if len(set(alarms)) != len(alarms):
            raise ValueError("alarm names must not repeat")
        return alarms

    @field_validator("http_checks")
    @classmethod
    def _distinct_checks(cls, checks: list[HttpCheck]) -> list[HttpCheck]:
        urls = [check.url for check in checks]
        if len(set(urls)) != len(urls):
            raise ValueError("httpChecks must not repeat a url")
        return checks


class Rollback(_Model):
    automatic: bool = Field(
        default=True,
        description="Put the last-good revision back when a rollout fails. When false, "
        "a failed rollout is reported (Degraded) and left as it is.",
    )


STEP_NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
MAX_STEPS = 5
"""Steps per list (``preDeploy``, ``verify``): each keeps one tag on the revision it runs on."""
MAX_STEP_OVERRIDES = 8192
"""RunTask's limit on ``overrides``, in characters of its JSON (API_RunTask)."""
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Step(_Model):
    """A one-off ECS task run on the release's own task definition revision.

    ``preDeploy`` steps run before the service is updated (migrations), in
    order, each once per release fingerprint; ``verify`` steps run once the
    rollout completed, during the bake (smoke tests). A step succeeds when
    ``container`` exits 0 within ``timeoutSeconds``. ecsop starts it with the
    service's own launch type or capacity provider strategy, network
    configuration and platform version, and overrides only that container's
    command (and ``environment``, when given).
    """

    name: str = Field(
        min_length=1,
        max_length=32,
        description="Unique among the release's steps: lowercase letters, digits and '-', "
        "at most 32 characters.",
    )
    container: str = Field(
        min_length=1,
        max_length=255,
        description="The container of the service's task definition that runs the command; "
        "its exit code is the step's outcome.",
    )
    command: list[str] = Field(
        min_length=1,
        max_length=100,
        description="The command, exec form (as the task definition's containerDefinitions"
        "[].command), e.g. [python, manage.py, migrate, --noinput].",
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables added to (or replacing) the container's own, "
        "for this step only. Plain values: put secrets in the task definition's secrets.",
    )
    timeout_seconds: int = Field(
        default=900,
        ge=10,
        le=86400,
        description="Stop the task (StopTask) and fail the step when the container has not "
        "exited this many seconds after the task was created.",
    )

    @field_validator("name")
    @classmethod
    def _step_name(cls, name: str) -> str:
        if not STEP_NAME_PATTERN.match(name):
            raise ValueError(
                f"{name!r} is not valid: must be lowercase letters, digits and '-', starting "
                "and ending with a letter or digit, at most 32 characters"
            )
        return name

    @field_validator("command")
    @classmethod
    def _command(cls, command: list[str]) -> list[str]:
        if not command[0]:
            raise ValueError("the command's first word (the program) must not be empty")
        return command

    @field_validator("environment")
    @classmethod
    def _environment(cls, environment: dict[str, str]) -> dict[str, str]:
        for name in environment:
            if not _ENV_NAME.match(name):
                raise ValueError(
                    f"environment variable name {name!r} must be letters, digits and '_', "
                    "not starting with a digit"
                )
        return environment

    @model_validator(mode="after")
    def _fits_run_task(self) -> Step:
        size = len(json.dumps(self.override()))
        if size > MAX_STEP_OVERRIDES:
            raise ValueError(
                f"command and environment are {size} characters as RunTask overrides; "
                f"ECS accepts at most {MAX_STEP_OVERRIDES}"
            )
        return self

    def override(self) -> dict[str, Any]:
        """The RunTask ``containerOverrides`` entry for this step."""
        override: dict[str, Any] = {"name": self.container, "command": list(self.command)}
        if self.environment:
            override["environment"] = [
                {"name": k, "value": v} for k, v in sorted(self.environment.items())
            ]
        return override


class ReleaseSpec(_Model):
    region: str | None = Field(
        default=None,
        pattern=REGION_PATTERN,
        description="AWS region of the service. Default: the daemon's region.",
    )
    role_arn: str | None = Field(
        default=None,
        pattern=ROLE_ARN_PATTERN,
        description="IAM role to assume for this release (cross-account deploys).",
    )
    cluster: str = Field(min_length=1, max_length=255, description="ECS cluster name.")
    service: str = Field(min_length=1, max_length=255, description="ECS service name.")
    containers: dict[str, Image] = Field(
        min_length=1,
        description="Container name (as in the task definition) -> image pinned by digest "
        "(repository@sha256:<64 hex>, optionally repository:tag@sha256:<64 hex>).",
    )
    rollout: Rollout = Field(default_factory=Rollout)
    rollback: Rollback = Field(default_factory=Rollback)
    suspend: bool = Field(
        default=False, description="When true ecsop observes the service but changes nothing."
    )
    pre_deploy: list[Step] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        description="One-off tasks run in order on the new revision before the service is "
        "updated (database migrations); all must succeed, each runs once per release "
        "fingerprint. Rollbacks never run them.",
    )
    verify: list[Step] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        description="One-off tasks run in order on the new revision once its rollout "
        "completed, during the bake (smoke tests); a failure rolls the release back "
        "(reason verify).",
    )
    promotion: Promotion | None = Field(
        default=None,
        description="Deploy only images the named releases have proven (ran to last-good).",
    )
    depends_on: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Releases that must be Synced before this one deploys a new release.",
    )
    deploy_windows: list[DeployWindow] = Field(
        default_factory=list,
        max_length=50,
        description="Allow/deny windows for new deploys (rollbacks are never held).",
    )

    @field_validator("depends_on")
    @classmethod
    def _dependency_names(cls, names: list[str]) -> list[str]:
        return release_names(names)

    @field_validator("containers")
    @classmethod
    def _container_names(cls, containers: dict[str, str]) -> dict[str, str]:
        for name in containers:
            if not name or len(name) > 255:
                raise ValueError(f"container name {quote(name)} must be 1 to 255 characters")
        return containers

    @model_validator(mode="after")
    def _distinct_steps(self) -> ReleaseSpec:
        names = [step.name for step in (*self.pre_deploy, *self.verify)]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(
                f"step names must be unique across preDeploy and verify: {', '.join(repeated)} "
                "repeats"
            )
        return self

    @model_validator(mode="after")
    def _consistent_arns(self) -> ReleaseSpec:
        """An ARN for the cluster or service must agree with region, roleArn and each other."""
        cluster, service = parse_arn(self.cluster, "cluster"), parse_arn(self.service, "service")
        role = parse_arn(self.role_arn, "role")
        role_account = role.account if role else ""
        for what, arn in (("cluster", cluster), ("service", service)):
            if arn is None:
                continue
            if self.region and arn.region != self.region:
                raise ValueError(
                    f"spec.{what} is an ARN in {arn.region}, but spec.region is {self.region}"
                )
            if role_account and arn.account != role_account:
                raise ValueError(
                    f"spec.{what} is an ARN in account {arn.account}, but spec.roleArn "
                    f"assumes a role in account {role_account}"
                )
        if (
            cluster
            and service
            and (cluster.region, cluster.account)
            != (
                service.region,
                service.account,
            )
        ):
            raise ValueError(
                "spec.cluster and spec.service ARNs name different accounts or regions"
            )
        if service and service.parent and service.parent != cluster_name(self.cluster):
            named = cluster_name(self.cluster)
            raise ValueError(f"spec.service ARN is in cluster {service.parent!r}, not {named!r}")
        return self


class ServiceRelease(_Model):
    """One release: an ECS service and the images it must run."""

    api_version: Literal["ecsop.dev/v1"] = Field(description="Always ecsop.dev/v1.")
    kind: Literal["ServiceRelease"] = Field(description="Always ServiceRelease.")
    metadata: Metadata
    spec: ReleaseSpec

    @property
    def name(self) -> str:
        return self.metadata.name

    def fingerprint(self) -> str:
        return fingerprint(self.spec.containers)


@dataclass(frozen=True)
class Arn:
    """The parts of an ARN ecsop compares: ``arn:PARTITION:SERVICE:REGION:ACCOUNT:KIND/...``."""

    region: str
    account: str
    name: str
    """The last path element (a cluster, service or role name)."""
    parent: str = ""
    """A service's cluster, in the long ARN format (``service/CLUSTER/NAME``)."""


def parse_arn(value: str | None, kind: str) -> Arn | None:
    """``value`` as an ARN of ``kind`` (cluster, service, role), or None if it is a plain name."""
    if not value or not value.startswith("arn:"):
        return None
    parts = value.split(":", 5)
    if len(parts) < 6 or not parts[5].startswith(f"{kind}/"):
        return None
    path = parts[5].split("/")[1:]
    return Arn(parts[3], parts[4], path[-1], path[0] if len(path) > 1 else "")


def cluster_name(cluster: str) -> str:
    arn = parse_arn(cluster, "cluster")
    return arn.name if arn else cluster


@dataclass(frozen=True, order=True)
class ServiceIdentity:
    """Which ECS service a release manages, however the spec spells it.

    A cluster or service may be given by name or by ARN; two spellings of one
    service must be one identity (or two releases could fight over it), and
    the same names in two accounts are two services.
    """

    account: str
    """From an ARN or ``roleArn``; "" is the daemon's own account (not known offline)."""
    region: str
    cluster: str
    service: str

    def __str__(self) -> str:
        account = f"{self.account}/" if self.account else ""
        return f"{account}{self.region or 'the default region'}/{self.cluster}/{self.service}"


def identity(spec: ReleaseSpec, default_region: str, default_account: str = "") -> ServiceIdentity:
    cluster, service = parse_arn(spec.cluster, "cluster"), parse_arn(spec.service, "service")
    role = parse_arn(spec.role_arn, "role") if spec.role_arn else None
    account = (cluster or service or role or Arn("", default_account, "")).account
    region = spec.region or (cluster or service or Arn("", "", "")).region or default_region
    return ServiceIdentity(
        account,
        region,
        cluster.name if cluster else spec.cluster,
        service.name if service else spec.service,
    )


def image_problem(image: str, *, allow_mutable_tags: bool) -> str | None:
    """Say what is wrong with an image reference, or None when it is acceptable.

    A tag can be moved to other content after review; only a digest names
    exactly what was reviewed and merged, so digests are required by default.
    """
    if not image or not _IMAGE_PATTERN.match(image):
        return f"{quote(image)} is not an image reference (repository[:tag]@sha256:<64 hex>)"
    if DIGEST_PATTERN.search(image):
        return None
    if "@" in image:
        if not _DIGEST_LIKE.search(image) or "@sha256:" not in image:
            return f"{quote(image)}: only sha256 digests are supported (@sha256:<64 hex>)"
        return f"{quote(image)}: a sha256 digest is exactly 64 lowercase hex characters"
    if allow_mutable_tags:
        return None
    return (
        f"{quote(image)} is not pinned by digest: write repository@sha256:<64 hex> "
        "(tags can move; the daemon accepts them only with --allow-mutable-tags)"
    )


def fingerprint(containers: dict[str, str]) -> str:
    """A short, stable hash of everything ecsop changes in a task definition.

    Today that is the container images. The same content gives the same
    fingerprint whatever the key order, file or release name, so a reverted
    spec finds the task definition revision it registered before.
    """
    canonical = json.dumps({"containers": containers}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a ServiceRelease document, for editors' YAML plugins."""
    schema = ServiceRelease.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://ecsop.dev/schemas/v1/servicerelease.json"
    schema["title"] = "ecsop ServiceRelease"
    image = {"type": "string", "pattern": r"^[^\s@]+@sha256:[0-9a-f]{64}$"}
    schema["$defs"]["ReleaseSpec"]["properties"]["containers"]["additionalProperties"] = image
    return schema
