"""The edge where ecsop meets boto3: clients per (region, role), and AWS errors.

``ClientFactory`` owns every boto3 session the daemon opens: one per (region,
role ARN), the role assumed through STS with credentials that refresh themselves
before they expire, and one botocore ``Config`` (retry mode, timeouts, user
agent) for every client. ``AwsError`` is the one exception type AWS failures
leave the gateway as, so nothing above it imports botocore.

Called by ``ecsop.ecs`` (and the other AWS-facing modules such as health probes);
the daemon builds one factory at start-up and injects it.

The endpoint is boto3's own business: ``AWS_ENDPOINT_URL`` (and the per-service
``AWS_ENDPOINT_URL_ECS``) are honoured natively by botocore >= 1.31, which is
how the sandbox and the tests point the daemon at a local endpoint.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import boto3
import botocore.credentials
import botocore.exceptions
import botocore.session
from botocore.config import Config

from ecsop import __version__
from ecsop.aws import timestamps
from ecsop.aws.budget import CallBudget

RetryMode = Literal["standard", "adaptive"]

ROLE_SESSION_NAME = "ecsop"
"""What CloudTrail shows as the session of every role ecsop assumes."""


@dataclass(frozen=True)
class AwsSettings:
    """How ecsop talks to AWS. One instance for the whole daemon."""

    retry_mode: RetryMode = "adaptive"
    """botocore retry mode. ``adaptive`` adds client-side rate limiting on throttling,
    which suits a daemon sharing an account's ECS API budget with humans and CI."""
    max_attempts: int = 10
    """Attempts per API call, the first one included (as ``AWS_MAX_ATTEMPTS`` counts them)."""
    connect_timeout: float = 5.0
    """Seconds to open a connection before botocore retries it."""
    read_timeout: float = 30.0
    """Seconds to wait for a response; ECS calls answer in well under a second."""
    max_pool_connections: int = 20
    """HTTP connections per client; workers share clients, so at least the worker count."""
    role_duration_seconds: int = 3600
    """Lifetime requested for assumed-role credentials; refreshed 15 minutes before expiry."""


class AwsError(Exception):
    """An AWS API call failed. Carries AWS's own error code and message.

    ``retryable`` says whether a later attempt may succeed unchanged (throttling
    that outlasted botocore's retries, a 5xx, a network failure); everything
    else (not found, access denied, invalid parameters) needs something to change.
    """

    def __init__(self, code: str, message: str, operation: str, *, retryable: bool = False) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.code = code
        self.message = message
        self.operation = operation
        self.retryable = retryable


# Codes botocore's standard retry mode itself treats as transient or throttling
# (botocore/retries/standard.py); if they reach us, botocore ran out of attempts.
# Not LimitExceededException: botocore retries it as throttling, but from ECS it
# means a quota (revisions, tags) that no amount of waiting lifts.
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServerException",
        "ServiceUnavailable",
    }
)


_QUOTED_VALUE = re.compile(r", value: .*?, type:", re.DOTALL)


@contextmanager
def translated_errors(operation: str) -> Iterator[None]:
    """Turn any botocore failure raised inside the block into an ``AwsError``."""
    try:
        yield
    except botocore.exceptions.ClientError as err:
        raise from_client_error(err, operation) from err
    except botocore.exceptions.BotoCoreError as err:
        # Network failures, timeouts, missing credentials: no AWS error code exists.
        transient = isinstance(
            err,
            botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError,
        )
        # Parameter validation quotes the offending value, which may be an
        # environment variable of a task definition: keep the path, drop the value.
        message = _QUOTED_VALUE.sub(", type:", str(err))
        raise AwsError(type(err).__name__, message, operation, retryable=transient) from err


def from_client_error(err: Any, operation: str) -> AwsError:
    """Build an ``AwsError`` from a botocore ``ClientError``."""
    response: dict[str, Any] = getattr(err, "response", None) or {}
    error = response.get("Error") or {}
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or response.get("message") or err)
    return AwsError(
        code,
        message,
        str(getattr(err, "operation_name", None) or operation),
        retryable=code in _RETRYABLE_CODES or status >= 500,
    )


class _AssumedRoleProvider(botocore.credentials.CredentialProvider):  # type: ignore[misc]
    """Hands a session the deferred, self-refreshing credentials of one role."""

    METHOD = "assume-role"
    CANONICAL_NAME = "ecsop-assume-role"

    def __init__(self, credentials: Any) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Any:
        return self._credentials


class ClientFactory:
    """boto3 clients per (service, region, role ARN), created once and shared.

    Sessions are not thread-safe to build from, but clients are safe to share once
    made, so creation happens under a lock and callers keep no session of their
    own. ``on_client_created`` runs once per new client, before anyone uses it:
    the metrics module registers botocore event handlers (``after-call``,
    ``needs-retry``) there, and tests count calls with ``before-call``.
    With a ``budget``, every attempt of every client waits for its token first
    (``ecsop.aws.budget``). Every session parses AWS's timestamps with
    ``ecsop.aws.timestamps``.
    """

    def __init__(
        self,
        settings: AwsSettings | None = None,
        on_client_created: Callable[[Any], None] | None = None,
        before_attempt: Callable[[], None] | None = None,
        budget: CallBudget | None = None,
    ) -> None:
        self._settings = settings or AwsSettings()
        self._on_client_created = on_client_created
        self._before_attempt = before_attempt
        """Called before every HTTP attempt of ``client()``'s clients (retries included);
        what it raises stops the attempt. The daemon's fence: a replica that lost a
        shard sends nothing more for it, not even a retry of a write begun before."""
        self.budget = budget
        """ecsop's share of AWS's API rates; None: calls are not paced."""
        self._config = Config(
            retries={
                "mode": self._settings.retry_mode,
                # botocore's "max_attempts" key counts retries only; "total_max_attempts"
                # is the AWS_MAX_ATTEMPTS meaning (first attempt included).
                "total_max_attempts": self._settings.max_attempts,
            },
            connect_timeout=self._settings.connect_timeout,
            read_timeout=self._settings.read_timeout,
            max_pool_connections=self._settings.max_pool_connections,
            user_agent_extra=f"ecsop/{__version__}",
        )
        self._single_attempt_config = self._config.merge(
            Config(retries={"mode": self._settings.retry_mode, "total_max_attempts": 1})
        )
        self._lock = threading.RLock()
        self._sessions: dict[tuple[str | None, str | None], boto3.Session] = {}
        self._clients: dict[tuple[str, str | None, str | None, bool], Any] = {}

    @property
    def config(self) -> Config:
        """The botocore configuration every client gets."""
        return self._config

    def client(
        self,
        service_name: str,
        region: str | None,
        role_arn: str | None = None,
        *,
        retries: bool = True,
    ) -> Any:
        """The shared client for ``service_name`` in ``region``, as ``role_arn`` if given.

        ``region`` None or empty means boto3's default region chain. Credentials
        for a role are fetched lazily, on the client's first call. ``retries``
        False gives a client that makes one attempt per call, for the calls
        that are not idempotent and that ecsop retries itself, after checking
        whether the lost attempt took effect (RegisterTaskDefinition).
        """
        key = (service_name, region or None, role_arn or None, retries)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                session = self._session(region or None, role_arn or None)
                config = self._config if retries else self._single_attempt_config
                with translated_errors(f"create {service_name} client"):
                    client = session.client(service_name, config=config)
                if self._on_client_created is not None:
                    self._on_client_created(client)
                # The budget's wait first, then the fence: a shard lost while a call
                # waited for its token stops that call.
                if self.budget is not None:
                    self.budget.instrument(client, role_arn or None)
                if self._before_attempt is not None:
                    client.meta.events.register("before-send", self._guard)
                self._clients[key] = client
            return client

    def _guard(self, **kwargs: Any) -> None:
        if self._before_attempt is not None:
            self._before_attempt()

    def quick_client(self, service_name: str, region: str | None, *, timeout: float) -> Any:
        """A client whose every call gives up within about ``2 * timeout`` seconds.

        For the coordination table: a lease renewal that answers after the next
        round is due is worth nothing, so it gets two attempts with short
        timeouts instead of the daemon's patient defaults. Same credentials,
        endpoint and ``on_client_created`` (its calls are counted like others).
        """
        key = (f"{service_name}+quick", region or None, None, True)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                session = self._session(region or None, None)
                config = self._config.merge(
                    Config(
                        connect_timeout=timeout,
                        read_timeout=timeout,
                        retries={"mode": "standard", "total_max_attempts": 2},
                    )
                )
                with translated_errors(f"create {service_name} client"):
                    client = session.client(service_name, config=config)
                if self._on_client_created is not None:
                    self._on_client_created(client)
                if self.budget is not None:
                    self.budget.instrument(client, None)
                self._clients[key] = client
            return client

    def _session(self, region: str | None, role_arn: str | None) -> boto3.Session:
        key = (region, role_arn)
        session = self._sessions.get(key)
        if session is None:
            if role_arn is None:
                session = boto3.Session(botocore_session=timestamps.session(), region_name=region)
            else:
                session = self._assumed_role_session(region, role_arn)
            self._sessions[key] = session
        return session

    def _assumed_role_session(self, region: str | None, role_arn: str) -> boto3.Session:
        """A session whose credentials come from STS AssumeRole on the base session.

        The STS client is the base session's, in the same region (regional STS
        endpoint, same endpoint override, same retry config). botocore's
        ``DeferredRefreshableCredentials`` call AssumeRole on first use and again
        15 minutes before expiry (10 minutes: mandatory, blocking), so a
        long-running daemon never holds expired credentials.
        """
        base = self._session(region, None)
        source = base.get_credentials()
        if source is None:
            raise AwsError(
                "NoCredentialsError",
                f"no base credentials to assume {role_arn} with",
                "AssumeRole",
            )
        base_core = base._session  # boto3 exposes no public accessor for it

        def create_sts(service_name: str, **kwargs: Any) -> Any:
            return base_core.create_client(
                service_name, region_name=base.region_name, config=self._config, **kwargs
            )

        fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
            client_creator=create_sts,
            source_credentials=source,
            role_arn=role_arn,
            extra_args={
                "RoleSessionName": ROLE_SESSION_NAME,
                "DurationSeconds": self._settings.role_duration_seconds,
            },
        )
        credentials = botocore.credentials.DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )
        core = timestamps.session()
        core.register_component(
            "credential_provider",
            botocore.credentials.CredentialResolver([_AssumedRoleProvider(credentials)]),
        )
        return boto3.Session(botocore_session=core, region_name=base.region_name)
