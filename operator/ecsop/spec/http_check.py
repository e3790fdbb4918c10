"""HTTP checks a spec asks the daemon to run (test traffic, smoke checks), and their secrets.

A check names where a secret lives (``valueFrom``), never the secret itself,
and may read only variables named ``ECSOP_CHECK_*`` or files of the daemon's
check-secrets directory: a spec can never send the daemon's own credentials
anywhere.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from pydantic import Field, field_validator, model_validator

from ecsop.spec.quoting import quote
from ecsop.spec.strict_model import StrictModel

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


class SecretFrom(StrictModel):
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


class HttpHeader(StrictModel):
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


class BasicAuth(StrictModel):
    """HTTP basic authentication; both parts are read by the daemon, never written here."""

    username_from: SecretFrom = Field(description="Where the daemon reads the user name.")
    password_from: SecretFrom = Field(description="Where the daemon reads the password.")


class HttpCheck(StrictModel):
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
