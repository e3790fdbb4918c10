"""The release spec: the pydantic models of a ``ServiceRelease`` and its fingerprint.

This module and its parts (``strict_model``, ``http_check``, ``strategy``,
``step``, ``analysis``, ``release_flow``) are the contract users write
against (``docs/design.md``, "The release spec"). Everything here is pure: it
validates one already-parsed YAML document. Reading files, line numbers and
cross-document rules (duplicate names, two releases on one service) belong to
``ecsop.spec.loader``.

Field names are the camelCase ones users write; Python code reads the
snake_case attributes. Models are frozen so a loaded spec can be shared across
worker threads without copies.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ecsop.spec.analysis import Analysis, distinct_names
from ecsop.spec.http_check import HttpCheck
from ecsop.spec.quoting import quote
from ecsop.spec.release_flow import DeployWindow, Promotion, release_names
from ecsop.spec.step import MAX_STEPS, Step
from ecsop.spec.strategy import Strategy
from ecsop.spec.strict_model import StrictModel

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


class Metadata(StrictModel):
    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=63,
        description="Unique release name in the spec directory: lowercase letters, digits "
        "and '-', at most 63 characters, starting and ending with a letter or digit.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Free-form labels, shown in status and logs."
    )


class Rollout(StrictModel):
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
        "records the approval of exactly that fingerprint and spec. Rollbacks never wait.",
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


class Rollback(StrictModel):
    automatic: bool = Field(
        default=True,
        description="Put the last-good revision back when a rollout fails. When false, "
        "a failed rollout is reported (Degraded) and left as it is.",
    )


class ReleaseSpec(StrictModel):
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


class ServiceRelease(StrictModel):
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
