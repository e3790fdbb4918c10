"""The shipped IAM policies allow exactly what the daemon calls, no more, no less.

How the calls are collected: the daemon counts every AWS API attempt it makes,
from botocore's events, in ``ecsop_aws_api_calls_total{service,operation,code}``
on ``/metrics``. ``test_policy_matches_what_a_lifecycle_calls`` runs a short
lifecycle against the sandbox (a deploy, a crash loop rolled back, a
migration that hangs and is stopped, ``ecsop retry``, ``ecsop plan``
including a release with ``spec.roleArn``, ``ecsop history`` and ``/status``
with its recent deployments, the ECS events read from helm-free-deploy's
events queue) with the
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

import boto3
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
    "elasticloadbalancing:DescribeRules": "no resource types",
    "cloudwatch:GetMetricData": "no resource types (analysis gates read any metric)",
}
"""The only actions allowed on ``Resource: "*"``; everything else names ARNs."""

ECSOP_SERVICE_TAGS = (*memory.SERVICE_KEYS, *memory.LEGACY_SERVICE_KEYS)
SANDBOX_VALUES = {
    "REGION": "us-east-1",
    "ACCOUNT_ID": "123456789012",
    "CLUSTER": "prod",
    "TASK_ROLES": "app-*",
    "DAEMON_ACCOUNT_ID": "999999999999",
    "EVENTS_QUEUE": "ecsop-events",
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
        "EVENTS_QUEUE",
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


def test_daemon_policy_is_the_deployer_policy_plus_assume_role_its_queue_and_its_table() -> None:
    daemon = policy.statements(policy.load(DAEMON_POLICY))
    deployer = policy.statements(policy.load(DEPLOYER_POLICY))
    extra = [s for s in daemon if s not in deployer]
    assert [a for s in extra for a in s.actions] == [
        "sts:AssumeRole",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
    ]
    assert all(s in daemon for s in deployer)
    (queue,) = [s for s in extra if s.actions[0].startswith("sqs:")]
    assert queue.resources == ("arn:aws:sqs:${REGION}:${ACCOUNT_ID}:${EVENTS_QUEUE}",)


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


CONDITION_KEYS: Mapping[str, frozenset[str]] = {
    # Service Authorization Reference, "Actions, resources, and condition keys for Amazon
    # Elastic Container Service" (list_amazonelasticcontainerservice.html), UpdateService row.
    "ecs:UpdateService": frozenset(
        {
            "ecs:capacity-provider",
            "ecs:enable-ebs-volumes",
            "ecs:enable-execute-command",
            "ecs:enable-service-connect",
            "ecs:namespace",
            "ecs:task-definition",
            "ecs:enable-vpc-lattice",
            "ecs:enable-ecs-managed-tags",
            "ecs:propagate-tags",
            "ecs:auto-assign-public-ip",
            "ecs:subnet",
            "ecs:task-cpu",
            "ecs:task-memory",
        }
    ),
    "ecs:TagResource": frozenset({"aws:TagKeys", "ecs:CreateAction"}),
    "ecs:UntagResource": frozenset({"aws:TagKeys"}),
    "ecs:ListTasks": frozenset({"ecs:cluster"}),
    # Same page, RunTask and StopTask rows (task-definition and task resource types);
    # aws:ResourceTag/${TagKey} is a global key, here for the one tag key ecsop tests.
    "ecs:RunTask": frozenset(
        {"ecs:cluster", "ecs:capacity-provider", "ecs:task-cpu", "ecs:task-memory"}
    ),
    "ecs:StopTask": frozenset({"ecs:cluster", "aws:ResourceTag/ecsop:step"}),
    "iam:PassRole": frozenset({"iam:PassedToService"}),
    # Global condition keys (reference_policies_condition-keys.html); aws:ResourceOrgID is
    # set for a role of an account that belongs to an organisation.
    "sts:AssumeRole": frozenset({"aws:ResourceOrgID"}),
}
"""The condition keys IAM defines for each action the policies condition, from AWS's references."""


@pytest.mark.parametrize("path", [DAEMON_POLICY, DEPLOYER_POLICY], ids=lambda p: p.name)
def test_every_condition_key_is_one_iam_defines_for_the_action(path: Path) -> None:
    for statement in policy.statements(policy.load(path)):
        keys = {key for test in statement.conditions.values() for key in test}
        for action in statement.actions:
            assert keys <= CONDITION_KEYS.get(action, frozenset()), (statement.sid, action, keys)


@pytest.mark.parametrize("path", [DAEMON_POLICY, DEPLOYER_POLICY], ids=lambda p: p.name)
def test_update_service_only_points_services_at_task_definitions_of_their_account(
    path: Path,
) -> None:
    document = policy.render(policy.load(path), SANDBOX_VALUES)
    (statement,) = [s for s in policy.statements(document) if "ecs:UpdateService" in s.actions]
    (pattern,) = statement.conditions["ArnLike"]["ecs:task-definition"]
    ours = "arn:aws:ecs:us-east-1:123456789012:task-definition/shop:7"
    assert policy._matches(pattern, ours)
    for elsewhere in (
        "arn:aws:ecs:us-east-1:999999999999:task-definition/shop:7",  # another account
        "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop:7",  # another region
    ):
        assert not policy._matches(pattern, elsewhere)


def test_the_daemon_assumes_deployer_roles_of_its_own_organisation_only() -> None:
    (statement,) = [
        s for s in policy.statements(policy.load(DAEMON_POLICY)) if "sts:AssumeRole" in s.actions
    ]
    assert statement.conditions == {"StringEquals": {"aws:ResourceOrgID": "${aws:PrincipalOrgID}"}}
    # A policy variable IAM fills in, not a placeholder left for the user.
    assert "aws:PrincipalOrgID" not in policy.placeholders(policy.load(DAEMON_POLICY))


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
    and, for ``shop``, a load balancer and an alarm, so the health gates call AWS too;
    healthy images serve traffic whose counts go to CloudWatch, for its analysis."""
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
    # ``web`` deploys blue/green and canary behind listener rules: the calls that
    # steer ECS's own traffic shifting (pause, continue, stop, the rules' weights).
    web = copy.deepcopy(config["clusters"]["prod"]["services"]["shop"])
    web["taskDefinition"]["family"] = "web"
    web["loadBalancer"] = {
        "containerName": "app",
        "containerPort": 8080,
        "deregistrationDelaySeconds": 5,
        "advancedConfiguration": {"testListener": True},
    }
    config["clusters"]["prod"]["services"]["web"] = web
    # ``jobs`` runs on Fargate in a VPC, as RunTask of its steps requires.
    jobs = copy.deepcopy(config["clusters"]["prod"]["services"]["shop-breaker"])
    jobs["taskDefinition"].update(
        family="jobs", requiresCompatibilities=["FARGATE"], networkMode="awsvpc"
    )
    config["clusters"]["prod"]["services"]["jobs"] = jobs
    # The release flow: a deploy's pre-flight checks the execution role (iam:GetRole) and
    # the ECR digests; ``shop-next`` is promoted from ``shop`` (proofs on revisions).
    shop = config["clusters"]["prod"]["services"]["shop"]["taskDefinition"]
    shop["executionRoleArn"] = EXECUTION_ROLE
    shop_next = copy.deepcopy(config["clusters"]["prod"]["services"]["shop-breaker"])
    shop_next["taskDefinition"]["family"] = "shop-next"
    config["clusters"]["prod"]["services"]["shop-next"] = shop_next
    for behaviour in config["images"].values():
        if behaviour["behavior"] == "healthy":
            behaviour["errorRate"] = 0.0
    config["images"][BROKEN_APP] = {"behavior": "healthy", "startSeconds": 5, "errorRate": 1.0}
    return config


EXECUTION_ROLE = "arn:aws:iam::123456789012:role/app-execution"
"""In the sandbox's account (moto's default), named as ``${TASK_ROLES}`` allows."""


BROKEN_APP = "registry.example/app@sha256:" + "b" * 64
"""Healthy to its load balancer; its application answers 500: fails test traffic."""


def _cloudwatch_analysis() -> dict[str, Any]:
    """The 5xx ratio of the service, by CloudWatch metric math (GetMetricData)."""

    def count(query_id: str, name: str) -> dict[str, Any]:
        dimensions = [
            {"name": "ClusterName", "value": "{{cluster}}"},
            {"name": "ServiceName", "value": "{{service}}"},
        ]
        metric = {"namespace": "Sandbox/App", "metricName": name, "dimensions": dimensions}
        stat = {"metric": metric, "period": 60, "stat": "Sum"}
        return {"id": query_id, "metricStat": stat, "returnData": False}

    queries = [count("errors", "5xxCount"), count("requests", "RequestCount")]
    queries.append({"id": "ratio", "expression": "errors / requests"})
    return {
        "name": "error-rate",
        "cloudwatch": {"metricDataQueries": queries},
        "failIf": "> 0.01",
        "intervalSeconds": 1,
    }


HANG = ["python", "manage.py", "migrate"]


def _jobs(image: str) -> dict[str, Any]:
    """A release whose migration hangs on every image but the first: RunTask, then StopTask."""
    from e2e.conftest import release_doc

    doc = release_doc("jobs", "jobs", image)
    doc["spec"]["preDeploy"] = [
        {"name": "migrate", "container": "app", "command": HANG, "timeoutSeconds": 30}
    ]
    return doc


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_policy_matches_what_a_lifecycle_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from e2e import event_stack
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

    config = _fargate_ready(scenario())
    config["commands"] = [{"image": GOOD_V2, "command": HANG, "durationSeconds": 1.0e9}]
    box = Sandbox(tmp_path, config)
    daemon: Daemon | None = None
    cli_calls: set[tuple[str, str]] = set()
    try:
        repo = SpecRepo(tmp_path / "specs")

        def shop(image: str) -> dict[str, Any]:
            return release_doc(
                "shop",
                "shop",
                image,
                alarms=["shop-5xx"],
                targetHealth=True,
                analysis=[_cloudwatch_analysis()],
            )

        def shop_next(image: str) -> dict[str, Any]:
            promoted = release_doc("shop-next", "shop-next", image)
            promoted["spec"]["promotion"] = {"from": ["shop"]}
            return promoted

        box_iam = boto3.client(
            "iam",
            endpoint_url=box.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        box_iam.create_role(RoleName="app-execution", AssumeRolePolicyDocument="{}")
        repo.commit(
            {
                "shop.yaml": shop(GOOD_V1),
                "next.yaml": shop_next(GOOD_V1),
                "jobs.yaml": _jobs(GOOD_V1),
            },
            "adopt",
        )
        cluster = box.service("shop")["clusterArn"]
        queue = event_stack.deploy(box.url, [cluster])["QueueUrl"]
        # The daemon runs as one of several replicas would: leases in the table.
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
            "--events-queue",
            queue,
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

        def phase(name: str = "shop") -> Any:
            return daemon.release(name).get("phase") if daemon else None

        test_url = box.control("GET", "listeners")["listeners"]["prod/web"]["test"]["url"]
        check = {"url": test_url, "intervalSeconds": 1, "failuresAllowed": 0}

        def web(image: str, strategy: dict[str, Any]) -> dict[str, Any]:
            return release_doc("web", "web", image, strategy=strategy, bakeSeconds=5)

        blue_green = {"blueGreen": {"bakeMinutes": 0, "testTraffic": {"httpChecks": [check]}}}
        canary = {"canary": {"percent": 30, "bakeMinutes": 30}}
        repo.commit({"web.yaml": web(GOOD_V1, blue_green)}, "adopt web")
        wait_for(lambda: phase() == "Synced", 30, "shop adopted")
        # A migration (a pre-deploy step) that hangs: RunTask, StopTask at its timeout.
        repo.commit({"jobs.yaml": _jobs(GOOD_V2)}, "jobs v2")
        wait_for(
            lambda: daemon is not None and daemon.release("jobs").get("reason") == "StepFailed",
            40,
            "the migration stopped at its timeout",
        )
        # Blue/green: green fails its test traffic, rolled back through ecsop's pause.
        repo.commit({"web.yaml": web(BROKEN_APP, blue_green)}, "web broken")
        # A deploy that succeeds: clone, register, update, bake, record last-good.
        repo.commit({"shop.yaml": shop(GOOD_V2), "next.yaml": shop_next(GOOD_V2)}, "v2")
        wait_for(lambda: box.steady_on("shop", GOOD_V2) and phase() == "Synced", 40, "v2")
        wait_for(lambda: box.steady_on("shop-next", GOOD_V2), 40, "v2 promoted to shop-next")
        # A crash loop: rolled back to last-good, failure recorded in service tags.
        repo.commit({"shop.yaml": shop(CRASH)}, "shop crash")
        wait_for(lambda: phase() == "Degraded", 40, "crash loop rolled back")
        assert box.failed("shop")
        wait_for(lambda: daemon.release("shop").get("history"), 10, "/status history")
        wait_for(lambda: box.failed("web"), 60, "web's test traffic failed")
        wait_for(lambda: box.steady_on("web", GOOD_V1), 60, "web back on v1")
        # Canary, then a revert mid-shift: ECS stops the service deployment.
        repo.commit({"web.yaml": web(GOOD_V2, canary)}, "web canary")
        wait_for(
            lambda: (daemon.release("web").get("rollout") or {}).get("productionOnGreen") == 30.0
            if daemon
            else False,
            60,
            "canary at 30%",
        )
        repo.commit({"web.yaml": web(GOOD_V1, canary)}, "web revert")
        wait_for(lambda: box.call_log("StopServiceDeployment"), 30, "rollout stopped")

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
            breaker["serviceArn"], "other", breaker["taskDefinition"], fingerprint=None
        )
        gone = gone.rolling_out(Fingerprint(fingerprint({"app": GOOD_V2})))
        box.ecs.tag_resource(
            resourceArn=breaker["serviceArn"],
            tags=[{"key": k, "value": v} for k, v in gone.tags().items()],
        )
        with recording_calls() as cli_calls:
            assert cli.main(["retry", "shop", "--specs", str(repo.path), "--url", daemon.url]) == 0
            assert cli.main(["retry", "jobs", "--specs", str(repo.path), "--url", daemon.url]) == 0
            assert cli.main(["plan", "--specs", str(repo.path)]) in (0, 2)
            assert cli.main(["plan", "--specs", str(cross_account)]) in (0, 2)
            assert cli.main(["history", "shop", "--specs", str(repo.path), "--json"]) == 0
        out = capsys.readouterr().out
        assert "cannot observe" not in out, out
        # The retry makes the daemon deploy the failed release again (and roll it back).
        wait_for(lambda: box.failed("shop"), 40, "failed again")
        wait_for(lambda: len(box.call_log("RunTask")) == 2, 40, "the migration retried")
        # The release leaves the directory: once its rollback is done, ecsop lets go.
        repo.remove("shop.yaml", "shop leaves")
        wait_for(lambda: not box.memory("shop").release, 60, "ecsop's tags removed")
        metrics = daemon.get("/metrics")
        service_arn = box.service("shop")["serviceArn"]
        task_definition_arn = box.service("shop")["taskDefinition"]
    finally:
        if daemon is not None:
            daemon.stop()
        box.stop()

    from_daemon = daemon_calls(metrics)
    assert ("ecs", "UpdateService") in from_daemon, "the lifecycle did not deploy"
    assert ("sts", "AssumeRole") in cli_calls, "spec.roleArn was not exercised"
    assert ("sqs", "DeleteMessageBatch") in from_daemon, "no ECS event was read and deleted"
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
                # the daemon's own (its events queue, its coordination table), not a target's
                if not a.startswith(("sts:", "sqs:", "dynamodb:"))
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
        (deploy,) = [s for s in policy.statements(document) if "ecs:UpdateService" in s.actions]
        (pattern,) = deploy.conditions["ArnLike"]["ecs:task-definition"]
        assert policy._matches(pattern, task_definition_arn), (path.name, task_definition_arn)
    daemon_policy = policy.render(policy.load(DAEMON_POLICY), values)
    queue_arn = f"arn:aws:sqs:us-east-1:{values['ACCOUNT_ID']}:ecsop-events"
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert policy.resource_allowed(daemon_policy, action, queue_arn), action
    table = f"arn:aws:dynamodb:us-east-1:{values['ACCOUNT_ID']}:table/{COORDINATION_TABLE}"
    for action in ("dynamodb:Scan", "dynamodb:UpdateItem"):
        assert policy.resource_allowed(daemon_policy, action, table), action
