"""The shipped IAM policies allow exactly what the daemon calls, no more, no less.

How the calls are collected: the daemon counts every AWS API attempt it makes,
from botocore's events, in ``ecsop_aws_api_calls_total{service,operation,code}``
on ``/metrics``. ``test_policy_matches_what_a_lifecycle_calls`` runs a short
lifecycle against the sandbox (a deploy, a crash loop rolled back, ``ecsop
retry``, ``ecsop plan`` including a release with ``spec.roleArn``) with the
daemon as a process coordinating through a DynamoDB table as replicas do
(the end-to-end harness of tests/e2e), scrapes that counter,
and records the one-shot commands' calls in-process by wrapping botocore's
``BaseClient._make_api_call`` (which also sees the STS client that assumes
roles, a client the daemon's metrics never instrument).

Each (service, operation) becomes an IAM action (``tests/deploy/policy.py``,
prefix from botocore's service model), plus the actions AWS authorises on the
caller's behalf (``IMPLIED``). The test fails when a needed action is not
allowed, or when the policy allows one that nothing needed and ``NOT_EXERCISED``
does not excuse with a reason.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import botocore.client
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ecsop.aws import clients as aws
from ecsop.aws.coordination import create_table
from ecsop.cli import app as cli
from ecsop.decision import memory
from ecsop.decision.ecs_state import Fingerprint
from ecsop.decision.memory import ServiceMemory
from ecsop.spec.model import fingerprint

from . import policy

IAM = Path(__file__).resolve().parents[2] / "helm-free-deploy" / "iam"
DAEMON_POLICY = IAM / "ecsop-daemon-policy.json"
DEPLOYER_POLICY = IAM / "ecsop-deployer-policy.json"
DEPLOYER_TRUST = IAM / "ecsop-deployer-trust-policy.json"

NOT_EXERCISED: Mapping[str, str] = {
    "ecs:DescribeContainerInstances": "EcsGateway.deployment_targets on the EC2 launch "
    "type only; the sandbox's services run on Fargate",
}
"""Actions the policies grant that the lifecycle below cannot make the code call."""

NO_RESOURCE_LEVEL: Mapping[str, str] = {
    "ecs:DescribeTaskDefinition": "no resource types in the ECS authorization reference",
    "ecs:ListTaskDefinitions": "no resource types",
    "ecs:RegisterTaskDefinition": "no resource types",
    "ecs:ListTasks": "resource type container-instance only; scoped by ecs:cluster instead",
    "elasticloadbalancing:DescribeTargetHealth": "no resource types",
}
"""The only actions allowed on ``Resource: "*"``; everything else names ARNs."""

ECSOP_SERVICE_TAGS = (*memory.SERVICE_KEYS, *memory.LEGACY_SERVICE_KEYS)
SANDBOX_VALUES = {
    "REGION": "us-east-1",
    "ACCOUNT_ID": "123456789012",
    "CLUSTER": "prod",
    "TASK_ROLES": "app-*",
    "DAEMON_ACCOUNT_ID": "999999999999",
    "COORDINATION_TABLE": "ecsop-coordination",
}
COORDINATION_TABLE = SANDBOX_VALUES["COORDINATION_TABLE"]


# -- the pure parts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "prefix"),
    [
        pytest.param("ecs", "ecs", id="ecs"),
        pytest.param("elbv2", "elasticloadbalancing", id="elbv2"),
        pytest.param("cloudwatch", "cloudwatch", id="cloudwatch-signs-as-monitoring"),
        pytest.param("sts", "sts", id="sts"),
        pytest.param("dynamodb", "dynamodb", id="dynamodb"),
    ],
)
def test_iam_prefix_comes_from_botocores_model(client: str, prefix: str) -> None:
    assert policy.iam_prefix_of_client(client) == prefix


def test_required_actions_add_what_aws_authorises_on_the_callers_behalf() -> None:
    needed = policy.required_actions(
        [("ecs", "RegisterTaskDefinition"), ("monitoring", "DescribeAlarms")]
    )
    assert set(needed) == {
        "ecs:RegisterTaskDefinition",
        "ecs:TagResource",
        "iam:PassRole",
        "cloudwatch:DescribeAlarms",
    }


SAMPLE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["ecs:DescribeServices", "ecs:UpdateService"],
            "Resource": "arn:aws:ecs:${REGION}:1:service/prod/*",
        },
        {"Effect": "Allow", "Action": "ecs:deletecluster", "Resource": "*"},
        {"Effect": "Deny", "Action": "ecs:RunTask", "Resource": "*"},
    ],
}


@pytest.mark.parametrize(
    ("needed", "excused", "missing", "unused", "stale"),
    [
        pytest.param(
            {"ecs:DescribeServices", "ecs:UpdateService"},
            {},
            set(),
            {"ecs:deletecluster"},
            set(),
            id="granted-but-never-called",
        ),
        pytest.param(
            {"ecs:DescribeServices", "ecs:UpdateService", "ecs:RunTask"},
            {"ecs:DeleteCluster": "why"},
            {"ecs:RunTask"},
            set(),
            set(),
            id="deny-does-not-allow-and-excuses-are-case-insensitive",
        ),
        pytest.param(
            {"ecs:DescribeServices", "ecs:UpdateService", "ecs:DeleteCluster"},
            {"ecs:DeleteCluster": "why"},
            set(),
            set(),
            {"ecs:DeleteCluster"},
            id="stale-excuse",
        ),
    ],
)
def test_compare(
    needed: set[str],
    excused: dict[str, str],
    missing: set[str],
    unused: set[str],
    stale: set[str],
) -> None:
    result = policy.compare(SAMPLE, dict.fromkeys(needed, "test"), excused)
    assert set(result.missing) == missing
    assert result.unused == unused
    assert result.excused_but_used == stale


def test_render_replaces_placeholders_and_refuses_unknown_ones() -> None:
    assert policy.placeholders(SAMPLE) == {"REGION"}
    rendered = policy.render(SAMPLE, {"REGION": "eu-west-1"})
    assert policy.resource_allowed(
        rendered, "ecs:UpdateService", "arn:aws:ecs:eu-west-1:1:service/prod/api"
    )
    assert not policy.resource_allowed(
        rendered, "ecs:UpdateService", "arn:aws:ecs:eu-west-1:1:service/staging/api"
    )
    with pytest.raises(KeyError, match="REGION"):
        policy.render(SAMPLE, {})


# -- the shipped documents, statically --------------------------------------------


@pytest.mark.parametrize("path", sorted(IAM.glob("*.json")), ids=lambda p: p.name)
def test_every_document_is_well_formed(path: Path) -> None:
    document = policy.load(path)
    assert document["Version"] == "2012-10-17"
    sids = [s.sid for s in policy.statements(document)]
    assert all(sids) and len(sids) == len(set(sids)), "every statement has a unique Sid"
    for statement in policy.statements(document):
        assert statement.effect == "Allow"
        for action in statement.actions:
            assert "*" not in action, f"{path.name}: no wildcard actions ({action})"
    assert policy.placeholders(document) <= {
        "ACCOUNT_ID",
        "REGION",
        "CLUSTER",
        "TASK_ROLES",
        "DAEMON_ACCOUNT_ID",
        "OIDC_PROVIDER",
        "GIT_SECRET_NAME",
        "COORDINATION_TABLE",
    }, "placeholders are the ones helm-free-deploy/iam/README.md documents"


@pytest.mark.parametrize("path", [DAEMON_POLICY, DEPLOYER_POLICY], ids=lambda p: p.name)
def test_resource_star_only_where_aws_allows_nothing_narrower(path: Path) -> None:
    for statement in policy.statements(policy.load(path)):
        if "*" in statement.resources:
            assert set(statement.actions) <= set(NO_RESOURCE_LEVEL), statement.sid


@pytest.mark.parametrize("path", [DAEMON_POLICY, DEPLOYER_POLICY], ids=lambda p: p.name)
def test_service_tags_are_limited_to_the_keys_ecsop_writes(path: Path) -> None:
    document = policy.render(policy.load(path), SANDBOX_VALUES)
    service = "arn:aws:ecs:us-east-1:123456789012:service/prod/shop"
    for statement in policy.statements(document):
        if "ecs:TagResource" in statement.actions and any(
            policy._matches(r, service) for r in statement.resources
        ):
            keys = statement.conditions["ForAllValues:StringLike"]["aws:TagKeys"]
            assert statement.conditions["Null"] == {"aws:TagKeys": "false"}
            for tag in ECSOP_SERVICE_TAGS:
                assert any(policy._matches(k, tag) for k in keys), tag
            assert not any(policy._matches(k, "team") for k in keys)


def test_daemon_policy_is_the_deployer_policy_plus_assume_role_and_its_table() -> None:
    daemon = policy.statements(policy.load(DAEMON_POLICY))
    deployer = policy.statements(policy.load(DEPLOYER_POLICY))
    extra = [s for s in daemon if s not in deployer]
    assert [a for s in extra for a in s.actions] == [
        "sts:AssumeRole",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
    ]
    assert all(s in daemon for s in deployer)


def test_the_coordination_table_is_the_only_dynamodb_resource() -> None:
    document = policy.render(policy.load(DAEMON_POLICY), SANDBOX_VALUES)
    table = f"arn:aws:dynamodb:us-east-1:123456789012:table/{COORDINATION_TABLE}"
    for statement in policy.statements(document):
        if any(a.startswith("dynamodb:") for a in statement.actions):
            assert statement.resources == (table,)
            assert all(a.startswith("dynamodb:") for a in statement.actions)


def test_deployer_trust_policy_matches_how_ecsop_assumes_roles() -> None:
    (statement,) = policy.statements(policy.load(DEPLOYER_TRUST))
    assert statement.actions == ("sts:AssumeRole",)
    assert statement.conditions["StringEquals"]["sts:RoleSessionName"] == aws.ROLE_SESSION_NAME
    assumable = next(
        s for s in policy.statements(policy.load(DAEMON_POLICY)) if "sts:AssumeRole" in s.actions
    )
    assert all(r.endswith(":role/ecsop-deployer") for r in assumable.resources)


def _gateway_operations() -> set[str]:
    """ECS API names of every ``self._call("method", ...)`` in the AWS edge's source."""
    import botocore.session
    from botocore import xform_name

    import ecsop.aws

    model = botocore.session.get_session().get_service_model("ecs")
    api = {xform_name(name): name for name in model.operation_names}
    package = Path(ecsop.aws.__file__).parent
    source = "\n".join(path.read_text() for path in sorted(package.glob("*.py")))
    return {api[m] for m in re.findall(r"_call\(\s*\"(\w+)\"", source) if m in api}


def test_every_ecs_operation_in_the_gateway_source_is_allowed() -> None:
    """A static net under the lifecycle: calls on paths it cannot reach are covered too."""
    operations = _gateway_operations()
    assert {"DescribeServices", "UpdateService", "RegisterTaskDefinition"} <= operations
    needed = policy.required_actions(("ecs", op) for op in operations)
    for path in (DAEMON_POLICY, DEPLOYER_POLICY):
        result = policy.compare(policy.load(path), needed, NOT_EXERCISED)
        assert not result.missing, f"{path.name} lacks {sorted(result.missing)}"


# -- the lifecycle ------------------------------------------------------------------


@contextmanager
def recording_calls() -> Iterator[set[tuple[str, str]]]:
    """Every (signing name, operation) any botocore client in this process calls."""
    calls: set[tuple[str, str]] = set()
    original = botocore.client.BaseClient._make_api_call

    def record(self: Any, operation_name: str, api_params: Any) -> Any:
        calls.add((self.meta.service_model.signing_name, operation_name))
        return original(self, operation_name, api_params)

    with mock.patch.object(botocore.client.BaseClient, "_make_api_call", record):
        yield calls


def daemon_calls(metrics_text: str) -> set[tuple[str, str]]:
    calls = set()
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "ecsop_aws_api_calls_total" and sample.value > 0:
                calls.add((sample.labels["service"], sample.labels["operation"]))
    return calls


def test_daemon_calls_are_read_from_the_metrics_counter() -> None:
    text = (
        "# HELP ecsop_aws_api_calls_total x\n# TYPE ecsop_aws_api_calls_total counter\n"
        'ecsop_aws_api_calls_total{service="ecs",operation="UpdateService",code="200"} 2.0\n'
        'ecsop_aws_api_calls_total{service="monitoring",operation="DescribeAlarms",'
        'code="AccessDenied"} 1.0\n'
    )
    assert daemon_calls(text) == {("ecs", "UpdateService"), ("monitoring", "DescribeAlarms")}


def _fargate_ready(config: dict[str, Any]) -> dict[str, Any]:
    """The e2e scenario with task-level cpu/memory (the simulator requires them, as ECS),
    and, for ``shop``, a load balancer and an alarm, so the health gates call AWS too."""
    config = copy.deepcopy(config)
    for cluster in config["clusters"].values():
        for service in cluster["services"].values():
            service["taskDefinition"].setdefault("cpu", "256")
            service["taskDefinition"].setdefault("memory", "512")
    config["clusters"]["prod"]["services"]["shop"]["loadBalancer"] = {
        "containerName": "app",
        "containerPort": 8080,
    }
    config["alarms"] = ["shop-5xx"]
    return config


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_policy_matches_what_a_lifecycle_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from e2e.conftest import (  # the end-to-end harness: real processes
        CRASH,
        GOOD_V1,
        GOOD_V2,
        Daemon,
        Sandbox,
        SpecRepo,
        release_doc,
        scenario,
        wait_for,
    )

    box = Sandbox(tmp_path, _fargate_ready(scenario()))
    daemon: Daemon | None = None
    cli_calls: set[tuple[str, str]] = set()
    try:
        repo = SpecRepo(tmp_path / "specs")

        def shop(image: str) -> dict[str, Any]:
            return release_doc("shop", "shop", image, alarms=["shop-5xx"], targetHealth=True)

        repo.commit({"shop.yaml": shop(GOOD_V1)}, "adopt shop")
        # The daemon runs as one of several replicas would: leases in the table.
        import boto3

        create_table(
            boto3.client(
                "dynamodb",
                endpoint_url=box.url,
                region_name="us-east-1",
                aws_access_key_id="setup",
                aws_secret_access_key="x",
            ),
            COORDINATION_TABLE,
        )
        daemon = Daemon(
            tmp_path,
            box,
            repo.path,
            "--coordination",
            f"dynamodb:{COORDINATION_TABLE}",
            "--shards",
            "2",
            "--lease-duration",
            "6",
            "--renew-deadline",
            "4",
            "--retry-period",
            "1",
        )

        def phase() -> Any:
            return daemon.release("shop").get("phase") if daemon else None

        wait_for(lambda: phase() == "Synced", 30, "shop adopted")
        # A deploy that succeeds: clone, register, update, bake, record last-good.
        repo.commit({"shop.yaml": shop(GOOD_V2)}, "shop v2")
        wait_for(lambda: box.steady_on("shop", GOOD_V2) and phase() == "Synced", 40, "v2")
        # A crash loop: rolled back to last-good, failure recorded in service tags.
        repo.commit({"shop.yaml": shop(CRASH)}, "shop crash")
        wait_for(lambda: phase() == "Degraded", 40, "crash loop rolled back")
        assert box.failed("shop")

        # The one-shot commands, in this process, against the same endpoint.
        for name, value in box.aws_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        cross_account = tmp_path / "cross-account"
        cross_account.mkdir()
        other = release_doc("other", "shop-breaker", GOOD_V2)
        other["spec"]["roleArn"] = "arn:aws:iam::111122223333:role/ecsop-deployer"
        (cross_account / "other.yaml").write_text(yaml.safe_dump(other))
        # ecsop rolled GOOD_V2 out on shop-breaker once, and it is gone: plan asks ECS's
        # service deployment history what became of it.
        breaker = box.service("shop-breaker")
        gone = ServiceMemory(release="other").proven(
            breaker["serviceArn"], "other", breaker["taskDefinition"]
        )
        gone = gone.rolling_out(Fingerprint(fingerprint({"app": GOOD_V2})))
        box.ecs.tag_resource(
            resourceArn=breaker["serviceArn"],
            tags=[{"key": k, "value": v} for k, v in gone.tags().items()],
        )
        with recording_calls() as cli_calls:
            assert cli.main(["retry", "shop", "--specs", str(repo.path), "--url", daemon.url]) == 0
            assert cli.main(["plan", "--specs", str(repo.path)]) in (0, 2)
            assert cli.main(["plan", "--specs", str(cross_account)]) in (0, 2)
        out = capsys.readouterr().out
        assert "cannot observe" not in out, out
        # The retry makes the daemon deploy the failed release again (and roll it back).
        wait_for(lambda: box.failed("shop"), 40, "failed again")
        # The release leaves the directory: once its rollback is done, ecsop lets go.
        repo.remove("shop.yaml", "shop leaves")
        wait_for(lambda: not box.memory("shop").release, 60, "ecsop's tags removed")
        metrics = daemon.get("/metrics")
        service_arn = box.service("shop")["serviceArn"]
    finally:
        if daemon is not None:
            daemon.stop()
        box.stop()

    from_daemon = daemon_calls(metrics)
    assert ("ecs", "UpdateService") in from_daemon, "the lifecycle did not deploy"
    assert ("sts", "AssumeRole") in cli_calls, "spec.roleArn was not exercised"
    assert ("dynamodb", "UpdateItem") in from_daemon, "the lifecycle ran without coordination"
    needed = policy.required_actions(from_daemon | cli_calls)

    values = {**SANDBOX_VALUES, "ACCOUNT_ID": service_arn.split(":")[4]}
    for path in (DAEMON_POLICY, DEPLOYER_POLICY):
        document = policy.render(policy.load(path), values)
        wanted = (
            needed
            if path == DAEMON_POLICY
            else {
                a: why
                for a, why in needed.items()
                if not a.startswith(("sts:", "dynamodb:"))  # the daemon's own, not a target's
            }
        )
        result = policy.compare(document, wanted, NOT_EXERCISED)
        assert not result.missing, f"{path.name} lacks actions the daemon calls: {result.missing}"
        assert not result.unused, (
            f"{path.name} allows actions nothing called: {sorted(result.unused)}; remove them, "
            "or excuse them in NOT_EXERCISED with the reason the lifecycle cannot reach them"
        )
        if result.excused_but_used:
            warnings.warn(
                f"NOT_EXERCISED is stale, the lifecycle now calls {result.excused_but_used}",
                stacklevel=1,
            )
        # The scoped statements cover the ARNs the sandbox actually used.
        for action in (
            "ecs:DescribeServices",
            "ecs:UpdateService",
            "ecs:TagResource",
            "ecs:UntagResource",
        ):
            assert policy.resource_allowed(document, action, service_arn), (path.name, action)
    table = f"arn:aws:dynamodb:us-east-1:{values['ACCOUNT_ID']}:table/{COORDINATION_TABLE}"
    daemon_document = policy.render(policy.load(DAEMON_POLICY), values)
    for action in ("dynamodb:Scan", "dynamodb:UpdateItem"):
        assert policy.resource_allowed(daemon_document, action, table), action
