"""Health gates: the spec's httpChecks, when gates are probed, how they decide, the probes.

AWS-facing probes run against moto in-process (``mock_aws``); HTTP checks
against a server on 127.0.0.1 with intervals of a second or less.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from builders import deployment as build_deployment
from builders import memory_tags, task_definition, td_arn
from builders import release as build_release
from ecsop.aws.clients import AwsError
from ecsop.aws.ecs import EcsGateway
from ecsop.decision import actions
from ecsop.decision import decide as reconciler
from ecsop.decision.ecs_state import (
    Deployment,
    DeploymentStatus,
    LoadBalancer,
    RolloutState,
    ServiceEvent,
    ServiceState,
    TaskDefinition,
    TaskDefinitionArn,
    TaskTarget,
)
from ecsop.decision.observation import Health, Observation, Options
from ecsop.decision.reasons import Failure, Phase, Reason
from ecsop.decision.situation import Probe, classify, probes_for
from ecsop.probes import health, http_checks
from ecsop.spec.http_check import HttpCheck
from ecsop.spec.model import Rollout, ServiceRelease, fingerprint

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OLD = "repo/api@sha256:" + "0" * 64
NEW = "repo/api@sha256:" + "1" * 64
TG = "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/api/0123456789abcdef"


def arn(revision: int) -> TaskDefinitionArn:
    return td_arn("api", revision)


LAST_GOOD = arn(1)
TD_OLD = task_definition("api", 1, {"api": OLD})
TD_NEW = task_definition("api", 2, {"api": NEW})
TDS = {td.arn: td for td in (TD_OLD, TD_NEW)}
FP_NEW = fingerprint({"api": NEW})


def release(**rollout: Any) -> ServiceRelease:
    return build_release(containers={"api": NEW}, rollout=rollout)


def deployment(
    td: TaskDefinition,
    state: RolloutState,
    status: DeploymentStatus = DeploymentStatus.PRIMARY,
    updated_ago: float = 10,
    reason: str = "",
) -> Deployment:
    return build_deployment(
        td,
        state,
        status,
        age=120,
        updated_ago=updated_ago,
        reason=reason,
        id=f"ecs-svc/{td.revision}",
    )


ROLLING = deployment(TD_NEW, RolloutState.IN_PROGRESS)
BAKING = deployment(TD_NEW, RolloutState.COMPLETED)
BAKED = deployment(TD_NEW, RolloutState.COMPLETED, updated_ago=600)
OLD_ACTIVE = deployment(TD_OLD, RolloutState.COMPLETED, DeploymentStatus.ACTIVE)


def observe(
    *deployments: Deployment,
    last_good: TaskDefinitionArn | None = LAST_GOOD,
    failed: str = "",
    state: dict[str, Any] | None = None,
    **health: Any,
) -> Observation:
    tags = memory_tags(last_good=last_good, failed=failed or None) if last_good or failed else {}
    service = ServiceState(
        arn="arn:aws:ecs:us-east-1:111122223333:service/prod/api",
        cluster="prod",
        name="api",
        status="ACTIVE",
        task_definition=deployments[0].task_definition,
        desired_count=2,
        running_count=2,
        deployments=deployments,
        tags=tags,
        has_load_balancers=True,
        load_balancers=(LoadBalancer(TG, "api", 8080),),
        **(state or {}),
    )
    return Observation(service=service, task_definitions=TDS, health=Health(**health))


def decide(rel: ServiceRelease, obs: Observation) -> actions.Action:
    return reconciler.decide(rel, obs, NOW, Options(active_poll_seconds=5))


# --- the spec ------------------------------------------------------------------------


def test_http_check_defaults() -> None:
    check = Rollout.model_validate({"httpChecks": [{"url": "https://api.example.com/healthz"}]})
    assert check.http_checks == [
        HttpCheck(
            url="https://api.example.com/healthz",
            expect_status=200,
            timeout_seconds=5,
            interval_seconds=10,
            failures_allowed=2,
        )
    ]


@pytest.mark.parametrize(
    "check",
    [
        pytest.param({"url": "ftp://example.com/x"}, id="scheme"),
        pytest.param({"url": "http:///path"}, id="no-host"),
        pytest.param({"url": "http://exa mple.com/"}, id="space"),
        pytest.param({"url": "http://example.com:70000/"}, id="port"),
        pytest.param({"url": "http://example.com", "expectStatus": 99}, id="status-low"),
        pytest.param({"url": "http://example.com", "expectStatus": "200"}, id="status-str"),
        pytest.param({"url": "http://example.com", "timeoutSeconds": 0}, id="timeout-0"),
        pytest.param({"url": "http://example.com", "timeoutSeconds": 61}, id="timeout-61"),
        pytest.param({"url": "http://example.com", "intervalSeconds": 0.5}, id="interval"),
        pytest.param({"url": "http://example.com", "failuresAllowed": -1}, id="failures"),
        pytest.param({"url": "http://example.com", "method": "POST"}, id="unknown-field"),
    ],
)
def test_http_check_rejects(check: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Rollout.model_validate({"httpChecks": [check]})


def test_http_checks_must_not_repeat_and_are_in_the_schema() -> None:
    with pytest.raises(ValidationError, match="repeat"):
        Rollout.model_validate({"httpChecks": [{"url": "http://a.b/"}, {"url": "http://a.b/"}]})
    from ecsop.spec.model import json_schema

    schema = json_schema()
    assert "httpChecks" in schema["$defs"]["Rollout"]["properties"]
    assert schema["$defs"]["HttpCheck"]["additionalProperties"] is False


# --- when the gates are probed --------------------------------------------------------


@pytest.mark.parametrize(
    ("obs", "expected"),
    [
        pytest.param(observe(ROLLING, OLD_ACTIVE), True, id="our-rollout"),
        pytest.param(observe(BAKING), True, id="baking"),
        pytest.param(observe(BAKING, last_good=arn(2)), False, id="synced"),
        pytest.param(observe(BAKING, last_good=None), False, id="adopting"),
        pytest.param(observe(ROLLING, OLD_ACTIVE, failed=FP_NEW), False, id="failure-recorded"),
        pytest.param(
            observe(deployment(TD_OLD, RolloutState.IN_PROGRESS)), False, id="foreign-rollout"
        ),
        pytest.param(observe(deployment(TD_OLD, RolloutState.COMPLETED)), False, id="steady-old"),
    ],
)
def test_gates_are_probed_only_while_a_rollout_is_judged(obs: Observation, expected: bool) -> None:
    assert (Probe.GATES in probed(release(), obs)) is expected


def probed(rel: ServiceRelease, obs: Observation) -> frozenset[Probe]:
    return probes_for(classify(rel, obs, Options()))


TD_SUPERSEDED = TaskDefinition(arn(3), "api", 3, {"api": OLD}, {"ecsop:release": "api-prod"})


def test_a_superseded_rollout_of_ours_is_probed_and_judged_on_health() -> None:
    # The spec moved on while ecsop's previous rollout still runs: it is judged
    # like any of ours, so an alarm in it must be seen and roll it back.
    rel = release(alarms=["api-5xx"])
    obs = observe(deployment(TD_SUPERSEDED, RolloutState.IN_PROGRESS), OLD_ACTIVE)
    obs = replace(obs, task_definitions={**TDS, TD_SUPERSEDED.arn: TD_SUPERSEDED})
    assert Probe.GATES in probed(rel, obs)
    action = decide(rel, replace(obs, health=Health(alarms_in_alarm=("api-5xx",))))
    assert isinstance(action, actions.Rollback) and action.failure is Failure.ALARM


def test_a_recorded_failure_without_automatic_rollback_is_still_probed() -> None:
    document = release().model_dump(by_alias=True, exclude_none=True)
    document["spec"]["rollback"] = {"automatic": False}
    rel = ServiceRelease.model_validate(document)
    obs = observe(ROLLING, OLD_ACTIVE, failed=FP_NEW)
    assert Probe.GATES in probed(rel, obs)


def test_our_own_rollback_is_not_probed() -> None:
    obs = observe(deployment(TD_OLD, RolloutState.IN_PROGRESS), failed=FP_NEW)
    assert not probed(release(), obs)


def test_suspended_releases_are_not_probed() -> None:
    rel = release().model_copy(update={"spec": release().spec.model_copy(update={"suspend": True})})
    assert not probed(rel, observe(ROLLING, OLD_ACTIVE))


# --- how gates decide -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("obs", "failure", "words"),
    [
        pytest.param(
            observe(ROLLING, OLD_ACTIVE, unhealthy_targets=1, target_detail="Target.Timeout"),
            Failure.TARGET_HEALTH,
            "1 targets unhealthy: Target.Timeout",
            id="rollout-target-health",
        ),
        pytest.param(
            observe(BAKING, alarms_in_alarm=("api-5xx",)),
            Failure.ALARM,
            "alarm api-5xx is in ALARM",
            id="bake-alarm",
        ),
        pytest.param(
            observe(BAKING, failing_http_checks=("http://x/: HTTP 500",)),
            Failure.HTTP_CHECK,
            "HTTP check failing: http://x/: HTTP 500",
            id="bake-http",
        ),
    ],
)
def test_a_gate_failing_during_rollout_or_bake_rolls_back(
    obs: Observation, failure: Failure, words: str
) -> None:
    action = decide(release(alarms=["api-5xx"]), obs)
    assert isinstance(action, actions.Rollback)
    assert (action.failure, action.to, action.deployment_id) == (failure, arn(1), "ecs-svc/2")
    assert words in action.detail


def test_unwatched_alarms_and_disabled_target_health_fail_nothing() -> None:
    obs = observe(BAKING, alarms_in_alarm=("someone-elses",), unhealthy_targets=2)
    assert isinstance(decide(release(targetHealth=False), obs), actions.Wait)


def ecs_guarded(
    *deployments: Deployment,
    fired_ago: float | None,
    rollback: bool = True,
    other_fired_ago: float | None = None,
    **health: Any,
) -> Observation:
    """The service's own deployment alarm ``api-ecs-5xx`` fired ``fired_ago`` seconds
    before NOW (None: CloudWatch gave no time); ECS rolls back on it if ``rollback``.
    With ``other_fired_ago``, its second alarm ``api-ecs-p99`` is firing too."""
    since = {} if fired_ago is None else {"api-ecs-5xx": NOW - timedelta(seconds=fired_ago)}
    alarms: tuple[str, ...] = (*health.pop("alarms_in_alarm", ()), "api-ecs-5xx")
    if other_fired_ago is not None:
        since["api-ecs-p99"] = NOW - timedelta(seconds=other_fired_ago)
        alarms = (*alarms, "api-ecs-p99")
    state = {"alarm_names": ("api-ecs-5xx", "api-ecs-p99"), "alarm_rollback": rollback}
    return observe(
        *deployments,
        state=state,
        alarms_in_alarm=alarms,
        alarms_firing_since=since,
        **health,
    )


def test_ecs_gets_the_first_move_on_its_own_deployment_alarm() -> None:
    # The rollout began 120 s ago; the alarm fired 10 s ago: ECS watches it and
    # rolls back by itself. A second rollback by ecsop would race ECS's.
    action = decide(release(), ecs_guarded(ROLLING, OLD_ACTIVE, fired_ago=10))
    assert isinstance(action, actions.Wait) and action.phase is Phase.PROGRESSING
    assert "ECS deployment alarm api-ecs-5xx in ALARM for 10s: ECS rolls back" in action.message


@pytest.mark.parametrize(
    "obs",
    [
        pytest.param(ecs_guarded(ROLLING, OLD_ACTIVE, fired_ago=91), id="grace-over"),
        pytest.param(ecs_guarded(ROLLING, OLD_ACTIVE, fired_ago=10, rollback=False), id="no-ecs"),
        # In ALARM when the deployment began: ECS does not watch it this deployment.
        pytest.param(ecs_guarded(ROLLING, OLD_ACTIVE, fired_ago=121), id="before-start"),
        pytest.param(ecs_guarded(ROLLING, OLD_ACTIVE, fired_ago=None), id="no-time"),
        # CloudWatch's time an hour ahead of ECS's: no clock skew explains it, and a
        # wrong timestamp must not hold the rollback back for that hour.
        pytest.param(ecs_guarded(ROLLING, OLD_ACTIVE, fired_ago=-3600), id="future-time"),
        # Another of its alarms was in ALARM when it began: ECS watches none of them.
        pytest.param(
            ecs_guarded(ROLLING, OLD_ACTIVE, fired_ago=10, other_fired_ago=300),
            id="another-before-start",
        ),
        # COMPLETED: ECS's watch is over; ecsop's bake goes on alone.
        pytest.param(ecs_guarded(BAKING, fired_ago=10), id="ecsop-bake"),
    ],
)
def test_ecsop_rolls_back_on_a_deployment_alarm_ecs_will_not_act_on(obs: Observation) -> None:
    action = decide(release(), obs)
    assert isinstance(action, actions.Rollback) and action.failure is Failure.ALARM
    assert "alarm api-ecs-5xx is in ALARM" in action.detail


def test_other_failing_gates_are_not_left_to_ecs() -> None:
    both = ecs_guarded(ROLLING, OLD_ACTIVE, fired_ago=10, alarms_in_alarm=("api-5xx",))
    action = decide(release(alarms=["api-5xx"]), both)
    assert isinstance(action, actions.Rollback) and "alarm api-5xx is in ALARM" in action.detail
    unhealthy = ecs_guarded(ROLLING, OLD_ACTIVE, fired_ago=10, unhealthy_targets=2)
    action = decide(release(), unhealthy)
    assert isinstance(action, actions.Rollback) and action.failure is Failure.TARGET_HEALTH


def test_bake_waits_for_every_gate_to_be_judged() -> None:
    unknown = ("HTTP check http://x/ (no result yet)",)
    waiting = decide(release(), observe(BAKED, unknown=unknown))
    assert isinstance(waiting, actions.Wait) and waiting.reason is Reason.BAKING
    assert "http://x/" in waiting.message
    done = decide(release(), observe(BAKED))
    assert isinstance(done, actions.RecordLastGood) and done.reason is Reason.BAKED
    # Unknown gates never fail a rollout by themselves.
    assert isinstance(
        decide(release(), observe(ROLLING, OLD_ACTIVE, unknown=unknown)), actions.Wait
    )


def test_ecs_failing_our_deployment_on_its_alarms_is_an_alarm_failure() -> None:
    failed = replace(
        ROLLING,
        rollout_state=RolloutState.FAILED,
        rollout_state_reason="ECS deployment alarms: api-5xx in ALARM state.",
    )
    action = decide(release(), observe(failed, OLD_ACTIVE, state={"alarm_names": ("api-5xx",)}))
    assert isinstance(action, actions.Rollback) and action.failure is Failure.ALARM
    assert "api-5xx" in action.detail


def test_ecs_rolling_back_on_its_alarms_is_recorded_as_alarm_by_ecs() -> None:
    back = deployment(TD_OLD, RolloutState.IN_PROGRESS)
    failed = replace(
        ROLLING,
        status=DeploymentStatus.ACTIVE,
        rollout_state=RolloutState.FAILED,
        rollout_state_reason="ECS deployment alarms: rolling back to deploymentId ecs-svc/1.",
    )
    event = ServiceEvent(
        "e1", NOW, "(service api) (deployment ecs-svc/2) deployment failed: alarm detected."
    )
    obs = observe(back, failed, state={"alarm_names": ("api-5xx",), "events": (event,)})
    action = decide(release(), obs)
    assert isinstance(action, actions.RecordFailure)
    assert (action.failure, action.rolled_back_by_ecs, action.deployment_id) == (
        Failure.ALARM,
        True,
        "ecs-svc/2",
    )
    assert "api-5xx" in action.detail and action.phase is Phase.ROLLING_BACK


def test_ecs_circuit_breaker_rollback_stays_ecs_rollback() -> None:
    back = deployment(TD_OLD, RolloutState.IN_PROGRESS)
    failed = replace(
        ROLLING,
        status=DeploymentStatus.ACTIVE,
        rollout_state=RolloutState.FAILED,
        rollout_state_reason="ECS deployment circuit breaker: tasks failed to start.",
    )
    action = decide(release(), observe(back, failed))
    assert isinstance(action, actions.RecordFailure)
    assert action.failure is Failure.ECS_ROLLBACK and action.rolled_back_by_ecs


# --- the AWS-facing probes --------------------------------------------------------------


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


class Targets:
    def __init__(self, *targets: TaskTarget) -> None:
        self.targets = list(targets)
        self.calls = 0

    def deployment_targets(self, cluster: str, deployment_id: str) -> list[TaskTarget]:
        self.calls += 1
        return self.targets


def _target_group(
    ips: dict[str, str], target_type: str = "ip", port: int = 8080
) -> tuple[Any, str]:
    """An ELBv2 target group whose targets report the given states (via the sandbox's hook)."""
    from ecsop.sandbox.loadbalancing import TargetGroups

    elbv2 = boto3.client("elbv2", region_name="us-east-1")
    vpc = boto3.client("ec2", region_name="us-east-1").describe_vpcs()["Vpcs"][0]["VpcId"]
    group = elbv2.create_target_group(
        Name=f"tg-{target_type}", Protocol="HTTP", Port=port, VpcId=vpc, TargetType=target_type
    )["TargetGroups"][0]["TargetGroupArn"]
    groups = TargetGroups("123456789012", "us-east-1")
    groups.adopt(group)
    for target, state in ips.items():
        groups.register(group, target, port)
        groups.set_state(group, target, state)
    return elbv2, group


def test_unhealthy_targets_counts_only_this_deployments_tasks(aws: None) -> None:
    elbv2, group = _target_group(
        {"10.0.0.1": "unhealthy", "10.0.0.2": "healthy", "10.0.0.9": "unhealthy"}
    )
    service = observe(ROLLING).service
    service = replace(service, load_balancers=(LoadBalancer(group, "api", 8080),))
    ours = Targets(
        TaskTarget("t1", NOW - timedelta(seconds=300), ips=("10.0.0.1",)),
        TaskTarget("t2", NOW - timedelta(seconds=300), ips=("10.0.0.2",)),
    )
    count, detail = health.unhealthy_targets(elbv2, ours, service, ROLLING, NOW)
    assert count == 1
    assert detail == "Target.ResponseCodeMismatch Health checks failed with these codes: [500]"


def test_tasks_in_the_grace_period_are_not_judged(aws: None) -> None:
    elbv2, group = _target_group({"10.0.0.1": "unhealthy"})
    service = replace(
        observe(ROLLING).service,
        load_balancers=(LoadBalancer(group, "api", 8080),),
        health_check_grace_seconds=60,
    )
    young = Targets(TaskTarget("t1", NOW - timedelta(seconds=30), ips=("10.0.0.1",)))
    assert health.unhealthy_targets(elbv2, young, service, ROLLING, NOW) == (0, "")
    old = Targets(TaskTarget("t1", NOW - timedelta(seconds=90), ips=("10.0.0.1",)))
    assert health.unhealthy_targets(elbv2, old, service, ROLLING, NOW)[0] == 1


def test_instance_targets_match_by_instance_and_host_port(aws: None) -> None:
    elbv2, group = _target_group({"i-0abc": "unhealthy"}, target_type="instance", port=32768)
    service = replace(observe(ROLLING).service, load_balancers=(LoadBalancer(group, "api", 80),))
    task = TaskTarget("t1", None, instance_id="i-0abc", host_ports={("api", 80): 32768})
    assert health.unhealthy_targets(elbv2, Targets(task), service, ROLLING, NOW)[0] == 1
    other_port = replace(task, host_ports={("api", 80): 32769})
    assert health.unhealthy_targets(elbv2, Targets(other_port), service, ROLLING, NOW)[0] == 0


def put_alarm(name: str, state: str = "OK") -> None:
    """A CloudWatch metric alarm in moto, in ``state``."""
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        MetricName="m",
        Namespace="n",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
    )
    if state != "OK":
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")


def test_alarm_states_reads_metric_alarms_and_leaves_out_missing_ones(aws: None) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    put_alarm("a-5xx")
    put_alarm("b-latency", "ALARM")
    states = health.alarm_states(cloudwatch, ["a-5xx", "b-latency", "missing"])
    assert {name: state.value for name, state in states.items()} == {
        "a-5xx": "OK",
        "b-latency": "ALARM",
    }
    assert [state.firing for state in states.values()] == [False, True]
    # When it fired: what ecsop measures ECS's first move on its own alarms from.
    assert all(isinstance(state.since, datetime) for state in states.values())


class Clients:
    """``ClientFactory.client`` stand-in: moto clients, or one that fails."""

    def __init__(self, fail: str = "") -> None:
        self.fail = fail
        self.asked: list[str] = []

    def __call__(self, service: str, region: str | None, role: str | None = None) -> Any:
        self.asked.append(service)
        if service == self.fail:
            raise AwsError("AccessDenied", f"no {service} for you", "Describe")
        return boto3.client(service, region_name=region)


def test_probe_asks_nothing_when_no_gate_applies(aws: None) -> None:
    clients = Clients()
    prober = health.HealthProber(clients)
    obs = observe(ROLLING, OLD_ACTIVE)
    obs = replace(obs, service=replace(obs.service, load_balancers=(), has_load_balancers=False))
    targets = Targets()
    assert prober.probe("api-prod", "us-east-1", release(), obs, targets, NOW, ROLLING) == Health()
    assert clients.asked == [] and targets.calls == 0
    prober.close()


def test_probe_never_passes_a_spec_alarm_that_does_not_exist(aws: None) -> None:
    put_alarm("api-5xx", "ALARM")
    prober = health.HealthProber(Clients())
    obs = observe(BAKING, state={"alarm_names": ("ecs-owned-missing",)})
    obs = replace(obs, service=replace(obs.service, load_balancers=(), has_load_balancers=False))
    rel = release(alarms=["api-5xx", "api-5xxx"])
    result = prober.probe("api-prod", "us-east-1", rel, obs, Targets(), NOW, BAKING)
    assert result.alarms_in_alarm == ("api-5xx",)
    # The typo holds back last-good; the service's own missing alarm is ECS's business.
    assert result.unknown == ("alarm api-5xxx (no such CloudWatch alarm in us-east-1)",)
    prober.close()


def test_probe_reports_aws_errors_as_unknown_gates(aws: None) -> None:
    prober = health.HealthProber(Clients(fail="cloudwatch"))
    result = prober.probe(
        "api-prod",
        "us-east-1",
        release(alarms=["api-5xx"]),
        observe(BAKING),
        Targets(),
        NOW,
        BAKING,
    )
    assert result.unknown == ("alarms (AccessDenied: no cloudwatch for you)",)
    assert result.unhealthy_targets == 0
    prober.close()


def test_deployment_targets_batches_describe_tasks_by_100() -> None:
    class Client:
        class meta:
            method_to_api_mapping: dict[str, str] = {}

        def __init__(self) -> None:
            self.described: list[int] = []

        def list_tasks(self, **kwargs: Any) -> dict[str, Any]:
            start = int(kwargs.get("nextToken") or 0)
            page = [f"arn:task/{i}" for i in range(start, min(start + 100, 150))]
            return {"taskArns": page, **({"nextToken": "100"} if start == 0 else {})}

        def describe_tasks(self, cluster: str, tasks: list[str]) -> dict[str, Any]:
            self.described.append(len(tasks))
            return {
                "tasks": [
                    {
                        "taskArn": arn,
                        "startedAt": NOW,
                        "attachments": [
                            {
                                "type": "ElasticNetworkInterface",
                                "details": [
                                    {"name": "subnetId", "value": "subnet-1"},
                                    {"name": "privateIPv4Address", "value": f"10.0.{i}.1"},
                                ],
                            }
                        ],
                    }
                    for i, arn in enumerate(tasks)
                ]
            }

    client = Client()
    targets = EcsGateway(client).deployment_targets("prod", "ecs-svc/2")
    assert client.described == [100, 50]
    assert len(targets) == 150 and targets[1].ips == ("10.0.1.1",) and targets[0].started_at == NOW


# --- HTTP checks -----------------------------------------------------------------------


class Server:
    def __init__(self) -> None:
        self.status = 200
        self.delay = 0.0
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                time.sleep(server.delay)
                self.send_response(server.status)
                if server.status in (301, 302):
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/healthz"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.http.shutdown()
    running.http.server_close()


def check(url: str, **extra: Any) -> HttpCheck:
    return HttpCheck.model_validate({"url": url, "intervalSeconds": 1, **extra})


def wait(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_http_check_statuses(server: Server) -> None:
    opener = http_checks.HttpProbes().__dict__["_opener"]
    assert http_checks.http_check(check(server.url), opener) == (True, "HTTP 200")
    server.status = 500
    assert http_checks.http_check(check(server.url), opener) == (False, "HTTP 500, expected 200")
    server.status = 302
    assert http_checks.http_check(check(server.url, expectStatus=302), opener) == (True, "HTTP 302")
    server.status, server.delay = 200, 0.5
    passed, what = http_checks.http_check(check(server.url, timeoutSeconds=0.1), opener)
    assert not passed and "timed out" in what
    refused = "http://127.0.0.1:9/nothing-listens-here"
    assert http_checks.http_check(check(refused), opener)[0] is False


def test_consecutive_failures_beyond_the_allowance_fail(server: Server) -> None:
    probes = http_checks.HttpProbes(workers=2)
    # Checks 2 s apart: this test looks every 20 ms, so it sees the second failure
    # before a third can come, even on a loaded machine.
    checks = [check(server.url, failuresAllowed=1, intervalSeconds=2)]
    failing, pending = probes.watch("api", "g1", checks)
    assert (failing, pending) == ((), (server.url,))
    wait(lambda: probes.watch("api", "g1", checks)[1] == ())
    assert probes.watch("api", "g1", checks)[0] == ()
    server.status = 503
    failing = wait(lambda: probes.watch("api", "g1", checks)[0], timeout=20)
    assert failing == (f"{server.url}: HTTP 503, expected 200 (2 consecutive failures)",)
    # A new rollout starts afresh.
    server.status = 200
    assert probes.watch("api", "g2", checks) == ((), (server.url,))
    probes.close()


def test_forget_stops_probing(server: Server) -> None:
    probes = http_checks.HttpProbes(workers=1)
    probes.watch("api", "g1", [check(server.url)])
    wait(lambda: server.requests >= 1)
    probes.forget("api")
    assert probes.watching() == []
    seen = server.requests
    time.sleep(1.5)
    assert server.requests == seen
    probes.close()


def test_a_slow_endpoint_never_blocks_the_caller(server: Server) -> None:
    server.delay = 1.0
    probes = http_checks.HttpProbes(workers=1)
    started = time.monotonic()
    probes.watch("api", "g1", [check(server.url, timeoutSeconds=3)])
    probes.watch("api", "g1", [check(server.url, timeoutSeconds=3)])
    assert time.monotonic() - started < 0.8, "watch never waits for the 1 s answer"
    probes.close()
