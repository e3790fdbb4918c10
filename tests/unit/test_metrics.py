"""Every metric's behaviour, through the daemon's decisions.

Release, rollout, reconcile and spec metrics are driven through a Controller
over the in-memory ECS of ``controller_world`` (one pass at a time, fixed
clock); AWS call counting through real botocore clients against moto's server,
built by ``ClientFactory`` with ``Metrics.instrument`` exactly as the daemon
builds them.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from controller_world import CRASH, V1, V2, World
from prometheus_client import CollectorRegistry, generate_latest

from ecsop import __version__
from ecsop.aws import clients as aws
from ecsop.aws import ecs
from ecsop.decision.ecs_state import RolloutState
from ecsop.decision.reasons import Failure, Phase
from ecsop.observability.metrics import OUTCOMES, ROLLBACK_REASONS, Metrics


def one_hot(world: World, name: str = "shop") -> dict[str, float | None]:
    return {
        phase.value: world.sample("ecsop_release_phase", release=name, phase=phase.value)
        for phase in Phase
    }


def series_of(registry: CollectorRegistry, release: str) -> set[str]:
    return {
        sample.name
        for family in registry.collect()
        for sample in family.samples
        if sample.labels.get("release") == release
    }


# --- stories that end in each phase -----------------------------------------------------


def synced(world: World) -> None:
    world.adopted()
    world.reconcile()


def progressing(world: World) -> None:
    world.deploying(V2)


def rolling_back(world: World) -> None:
    world.deploying(CRASH)
    world.ecs.fail_tasks("shop", 2)
    world.reconcile()


def degraded(world: World) -> None:
    rolling_back(world)
    world.ecs.complete("shop")
    world.reconcile()


def suspended(world: World) -> None:
    world.adopted()
    world.write("shop", V1, suspend=True)
    world.reconcile()


def invalid(world: World) -> None:
    world.adopted()
    world.write("shop", "not-a-digest")
    world.reconcile()


def never_valid(world: World) -> None:
    world.write("shop", "not-a-digest")
    world.reconcile()


@pytest.mark.parametrize(
    ("story", "phase", "in_sync"),
    [
        pytest.param(synced, Phase.SYNCED, 1, id="Synced"),
        pytest.param(progressing, Phase.PROGRESSING, 0, id="Progressing"),
        pytest.param(rolling_back, Phase.ROLLING_BACK, None, id="RollingBack"),
        pytest.param(degraded, Phase.DEGRADED, 0, id="Degraded"),
        pytest.param(suspended, Phase.SUSPENDED, 1, id="Suspended"),
        pytest.param(invalid, Phase.INVALID, 1, id="Invalid-last-valid-still-running"),
        pytest.param(never_valid, Phase.INVALID, 0, id="Invalid-never-valid"),
    ],
)
def test_release_phase_is_one_hot_and_synced_follows_the_running_revision(
    world: World, story: Callable[[World], None], phase: Phase, in_sync: int | None
) -> None:
    story(world)
    assert world.phase() is phase
    assert one_hot(world) == {p.value: (1.0 if p is phase else 0.0) for p in Phase}
    if in_sync is not None:  # RollingBack: see test_synced_is_zero_while_a_rollout_moves
        assert world.sample("ecsop_release_synced", release="shop") == in_sync
    info = [
        s
        for f in world.registry.collect()
        for s in f.samples
        if s.name == "ecsop_release_info" and s.labels["release"] == "shop"
    ]
    assert len(info) == 1 and info[0].value == 1


def test_synced_is_zero_while_a_rollout_moves(world: World) -> None:
    world.deploying(CRASH)
    world.reconcile()  # rolling out the desired revision: not in sync yet
    assert world.sample("ecsop_release_synced", release="shop") == 0
    world.ecs.fail_tasks("shop", 2)
    world.reconcile()  # rolling back
    assert world.phase() is Phase.ROLLING_BACK
    assert world.sample("ecsop_release_synced", release="shop") == 0


def test_synced_while_baking(world: World) -> None:
    """Baking runs the desired revision steadily: in sync (phase Progressing until baked)."""
    world.deploying(V2)
    world.ecs.complete("shop")
    world.reconcile()
    assert (world.phase(), world.status().reason) == (Phase.PROGRESSING, "Baking")
    assert world.sample("ecsop_release_synced", release="shop") == 1


def test_release_info_names_the_service(world: World) -> None:
    world.adopted()
    labels = {"release": "shop", "cluster": "prod", "service": "shop", "region": "us-east-1"}
    assert world.sample("ecsop_release_info", **labels) == 1


def test_release_info_is_replaced_when_an_invalid_release_becomes_valid(world: World) -> None:
    world.ecs.add_service("shop")
    never_valid(world)
    assert world.sample("ecsop_release_info", release="shop", cluster="", service="", region="")
    world.write("shop", V1)
    world.reconcile()
    assert (
        world.sample("ecsop_release_info", release="shop", cluster="", service="", region="")
        is None
    )
    labels = {"release": "shop", "cluster": "prod", "service": "shop", "region": "us-east-1"}
    assert world.sample("ecsop_release_info", **labels) == 1


# --- rollouts: outcomes, reasons, duration, last success ---------------------------------


def counts(world: World, name: str = "shop") -> tuple[dict[str, float | None], dict[str, float]]:
    deployments = {
        o: world.sample("ecsop_deployments_total", release=name, outcome=o) for o in OUTCOMES
    }
    rollbacks = {
        r: world.sample("ecsop_rollbacks_total", release=name, reason=r) for r in ROLLBACK_REASONS
    }
    return deployments, {r: v for r, v in rollbacks.items() if v}


def test_counters_start_at_zero_so_increase_sees_the_first_rollback(world: World) -> None:
    world.adopted()
    deployments, rollbacks = counts(world)
    assert deployments == {"succeeded": 0, "rolled_back": 0, "failed": 0}
    assert rollbacks == {}
    for reason in ROLLBACK_REASONS:
        assert world.sample("ecsop_rollbacks_total", release="shop", reason=reason) == 0
    assert world.sample("ecsop_deployment_duration_seconds_count", release="shop") is None
    assert world.sample("ecsop_last_successful_deploy_timestamp_seconds", release="shop") is None


def test_a_successful_rollout_is_counted_timed_and_stamped(world: World) -> None:
    world.deploying(V2)
    world.clock.advance(40)
    world.reconcile()
    world.ecs.complete("shop")
    world.reconcile()  # baking: not yet a success
    assert counts(world)[0]["succeeded"] == 0
    world.clock.advance(61)
    before = time.time()
    world.reconcile()
    assert world.status().reason == "Baked"
    assert counts(world) == ({"succeeded": 1, "rolled_back": 0, "failed": 0}, {})
    assert world.sample("ecsop_deployment_duration_seconds_count", release="shop") == 1
    assert world.sample("ecsop_deployment_duration_seconds_sum", release="shop") == 101
    assert world.sample("ecsop_deployment_duration_seconds_bucket", release="shop", le="60.0") == 0
    assert world.sample("ecsop_deployment_duration_seconds_bucket", release="shop", le="120.0") == 1
    stamp = world.sample("ecsop_last_successful_deploy_timestamp_seconds", release="shop")
    assert stamp is not None and before <= stamp <= time.time()
    world.reconcile()  # in sync from now on: counted once
    assert counts(world)[0]["succeeded"] == 1
    assert world.sample("ecsop_deployment_duration_seconds_count", release="shop") == 1


def fail_tasks(world: World) -> None:
    world.ecs.fail_tasks("shop", 2)


def time_out(world: World) -> None:
    world.clock.advance(601)


def breaker_fails(world: World) -> None:
    service = world.ecs.services["shop"]
    primary = dataclasses.replace(service.primary, rollout_state=RolloutState.FAILED)
    world.ecs.services["shop"] = dataclasses.replace(service, deployments=(primary,))


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        pytest.param(fail_tasks, Failure.FAILED_TASKS, id="failed_tasks"),
        pytest.param(time_out, Failure.TIMEOUT, id="timeout"),
        pytest.param(breaker_fails, Failure.CIRCUIT_BREAKER, id="circuit_breaker"),
    ],
)
def test_a_rollback_is_counted_once_by_reason(
    world: World, failure: Callable[[World], None], reason: Failure
) -> None:
    world.deploying(CRASH)
    failure(world)
    world.reconcile()
    assert world.phase() is Phase.ROLLING_BACK
    assert counts(world) == (
        {"succeeded": 0, "rolled_back": 1, "failed": 0},
        {reason.value: 1},
    )
    world.reconcile()  # watching the rollback: nothing more to count
    world.ecs.complete("shop")
    world.reconcile()  # Degraded: still one rollback
    assert world.phase() is Phase.DEGRADED
    assert counts(world) == (
        {"succeeded": 0, "rolled_back": 1, "failed": 0},
        {reason.value: 1},
    )
    assert world.sample("ecsop_deployment_duration_seconds_count", release="shop") is None


def test_ecs_circuit_breaker_rollback_is_counted_as_a_rollback(world: World) -> None:
    world.deploying(CRASH)
    world.ecs.breaker_rolls_back("shop")
    world.reconcile()
    assert (world.phase(), world.status().reason) == (
        Phase.ROLLING_BACK,
        "EcsCircuitBreakerRollingBack",
    )
    assert counts(world) == (
        {"succeeded": 0, "rolled_back": 1, "failed": 0},
        {"ecs_rollback": 1},
    )
    world.reconcile()
    assert counts(world)[0]["rolled_back"] == 1


def test_a_failure_without_automatic_rollback_is_a_failed_deployment(world: World) -> None:
    world.deploying(CRASH, rollback={"automatic": False})
    world.ecs.fail_tasks("shop", 2)
    world.reconcile()
    assert world.phase() is Phase.DEGRADED
    assert counts(world) == ({"succeeded": 0, "rolled_back": 0, "failed": 1}, {})
    assert world.ecs.calls.count("UpdateService") == 1  # left as it is


def test_the_next_release_after_a_rollback_counts_again(world: World) -> None:
    degraded(world)
    world.write("shop", V2)
    world.reconcile()
    world.ecs.complete("shop")
    world.clock.advance(61)
    world.reconcile()
    assert counts(world) == (
        {"succeeded": 1, "rolled_back": 1, "failed": 0},
        {"failed_tasks": 1},
    )


# --- releases leaving ---------------------------------------------------------------------


def test_forget_release_drops_its_series_and_keeps_the_others(world: World) -> None:
    degraded(world)
    world.adopted("other")
    world.remove("shop")
    world.reconcile("shop")
    assert series_of(world.registry, "shop") == set()
    assert "ecsop_release_phase" in series_of(world.registry, "other")
    assert "ecsop_rollbacks_total" in series_of(world.registry, "other")
    world.write("shop", V1)  # back again: counters start from zero
    world.reconcile("shop")
    assert counts(world)[0] == {"succeeded": 0, "rolled_back": 0, "failed": 0}


def test_the_worker_pass_that_lets_a_release_go_leaves_no_series_behind(world: World) -> None:
    synced(world)
    world.remove("shop")
    queue = world.controller.queue
    queue.add("shop")
    queue.shutdown()  # the worker hands out what is queued, then returns
    world.controller.loop._work()
    assert series_of(world.registry, "shop") == set()


def test_forget_release_removes_histograms_and_timestamps() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.set_release("shop", "prod", "shop", "us-east-1", Phase.SYNCED, True)
    metrics.deployment_duration.labels("shop").observe(42)
    metrics.last_success.labels("shop").set(1)
    metrics.forget_release("shop")
    assert series_of(registry, "shop") == set()
    metrics.forget_release("never-seen")  # harmless


# --- the spec directory ------------------------------------------------------------------


def git(path: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=dev", "-c", "user.email=dev@example.com", *args],
        cwd=path,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def test_spec_errors_and_files(world: World) -> None:
    world.ecs.add_service("shop")
    world.write("shop", V1)
    assert world.sample("ecsop_spec_errors") == 0
    world.write_raw("broken.yaml", "apiVersion: ecsop.dev/v1\nkind: [unclosed\n")
    world.write_raw(
        "bad-digest.yaml",
        (world.specs / "shop.yaml")
        .read_text()
        .replace("name: shop", "name: other")
        .replace("sha256:", "sha256:xyz"),
    )
    assert world.sample("ecsop_spec_errors") == 2
    assert world.sample("ecsop_spec_error_info", file=str(world.specs / "broken.yaml")) == 1
    assert world.sample("ecsop_spec_error_info", file=str(world.specs / "bad-digest.yaml")) == 1
    world.controller.reload_specs()  # reloading the same errors changes nothing
    assert world.sample("ecsop_spec_errors") == 2
    (world.specs / "bad-digest.yaml").unlink()
    world.remove("broken")  # both fixed: the per-file series go away
    assert world.sample("ecsop_spec_errors") == 0
    assert [
        s for f in world.registry.collect() for s in f.samples if s.name == "ecsop_spec_error_info"
    ] == []


def test_a_broken_spec_file_whose_name_is_not_utf8_leaves_metrics_up(world: World) -> None:
    world.write("shop", V1)
    with open(os.fsencode(world.specs) + b"/bad\xff.yaml", "wb") as broken:
        broken.write(b"kind: [\n")
    world.controller.reload_specs()
    text = generate_latest(world.registry).decode()
    assert f'ecsop_spec_error_info{{file="{world.specs}/bad\\\\xff.yaml"}} 1.0' in text


def test_every_label_value_is_exposable_whoever_sets_it() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    odd = "shop\udcff\ud800\n"  # a YAML "\udcff" escape, a lone surrogate, a newline
    metrics.set_release(odd, odd, odd, "us-east-1", Phase.INVALID, synced=False)
    metrics.reconciles.labels(odd, "error").inc()  # as the controller does, directly
    metrics.set_specs([odd], 1, None)
    text = generate_latest(registry).decode()
    assert 'ecsop_reconcile_total{release="shop\\\\xff\\\\ud800\\\\n",result="error"} 1.0' in text
    metrics.forget_release(odd)
    assert "ecsop_release_info{" not in generate_latest(registry).decode()


def test_spec_revision_is_the_checked_out_commit(world: World) -> None:
    world.write("shop", V1)
    assert [
        s
        for f in world.registry.collect()
        for s in f.samples
        if s.name == "ecsop_spec_revision_info"
    ] == []
    git(world.specs, "init", "-q", "-b", "main")
    git(world.specs, "add", "-A")
    git(world.specs, "commit", "-qm", "v1")
    first = git(world.specs, "rev-parse", "HEAD")
    world.controller.reload_specs()
    assert world.sample("ecsop_spec_revision_info", commit=first) == 1
    world.write("shop", V2)
    git(world.specs, "commit", "-qam", "v2")
    second = git(world.specs, "rev-parse", "HEAD")
    world.controller.reload_specs()
    assert world.sample("ecsop_spec_revision_info", commit=second) == 1
    assert world.sample("ecsop_spec_revision_info", commit=first) is None


def test_build_info_carries_the_version() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    assert registry.get_sample_value("ecsop_build_info", {"version": __version__}) == 1


# --- AWS API calls, counted from botocore's events -----------------------------------------


@pytest.fixture
def factory(aws_env: str) -> Any:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    settings = aws.AwsSettings(retry_mode="standard", max_attempts=3)
    return registry, aws.ClientFactory(settings, on_client_created=metrics.instrument)


def calls(registry: CollectorRegistry, operation: str, code: str) -> float | None:
    labels = {"service": "ecs", "operation": operation, "code": code}
    return registry.get_sample_value("ecsop_aws_api_calls_total", labels)


def test_successful_calls_are_counted_by_operation(factory: Any) -> None:
    registry, clients = factory
    gateway = ecs.EcsGateway(clients.client("ecs", "us-east-1"))
    clients.client("ecs", "us-east-1").create_cluster(clusterName="prod")
    gateway.describe_services("prod", ["a", "b"])
    gateway.describe_services("prod", ["c"])
    assert calls(registry, "CreateCluster", "200") == 1
    assert calls(registry, "DescribeServices", "200") == 2


def test_errors_are_counted_by_aws_error_code(factory: Any) -> None:
    registry, clients = factory
    gateway = ecs.EcsGateway(clients.client("ecs", "us-east-1"))
    with pytest.raises(aws.AwsError) as caught:
        gateway.task_definition("missing:1")
    assert calls(registry, "DescribeTaskDefinition", caught.value.code) == 1


def test_throttled_attempts_and_their_retries_are_each_counted(factory: Any) -> None:
    registry, clients = factory
    client = clients.client("ecs", "us-east-1")
    throttled = {"left": 1}

    def throttle(request: Any, **_: Any) -> AWSResponse | None:
        if throttled["left"] == 0:
            return None
        throttled["left"] -= 1
        body = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'
        return AWSResponse(
            request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, _Raw(body)
        )

    client.meta.events.register_first("before-send.ecs.ListClusters", throttle)
    client.list_clusters()  # botocore retries the throttled attempt by itself
    assert calls(registry, "ListClusters", "ThrottlingException") == 1
    assert calls(registry, "ListClusters", "200") == 1


def test_connection_failures_are_counted_by_exception(
    factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, _ = factory
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: nothing listens
    metrics = Metrics(registry := CollectorRegistry())
    settings = aws.AwsSettings(retry_mode="standard", max_attempts=2, connect_timeout=1)
    client = aws.ClientFactory(settings, on_client_created=metrics.instrument).client(
        "ecs", "us-east-1"
    )
    with pytest.raises(aws.AwsError):
        ecs.EcsGateway(client).describe_services("prod", ["a"])
    assert calls(registry, "DescribeServices", "EndpointConnectionError") == 2


class _Raw:
    """Just enough of urllib3's response for ``AWSResponse.content``."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *_: Any, **__: Any) -> Iterator[bytes]:
        yield self._body
