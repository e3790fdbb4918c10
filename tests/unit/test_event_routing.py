"""Which release an ECS event is about, and whether it is news worth a look."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from controller_world import V1, release_doc

from ecsop.aws.ecs_events import EcsEvent, EventKind
from ecsop.controller.event_routing import EventRouter, worth_a_look
from ecsop.controller.specset import SpecKeeper

ACCOUNT = "111122223333"
OTHER = "444455556666"


@pytest.fixture
def router(tmp_path: Path) -> EventRouter:
    specs = tmp_path / "specs"
    specs.mkdir()
    docs = {
        "shop": release_doc("shop", V1),
        "cart": release_doc("cart", V1),
        # The same cluster and service names in another account: another service.
        "cart-eu": {
            **release_doc("cart-eu", V1),
            "spec": {
                **release_doc("cart-eu", V1)["spec"],
                "service": "cart",
                "roleArn": f"arn:aws:iam::{OTHER}:role/ecsop-deployer",
            },
        },
    }
    for name, doc in docs.items():
        (specs / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    keeper = SpecKeeper(specs, default_region="us-east-1", allow_mutable_tags=False)
    keeper.default_account = ACCOUNT
    keeper.reload()
    routed = EventRouter(keeper)
    routed.observed("shop", ["ecs-svc/111", "ecs-svc/222"])
    return routed


def task(service: str = "", deployment: str = "", **fields: object) -> EcsEvent:
    values: dict[str, object] = {
        "account": ACCOUNT,
        "region": "us-east-1",
        "cluster": "prod",
        "service": service,
        "deployment": deployment,
        "name": "STOPPED/STOPPED",
        "stopping": True,
        **fields,
    }
    return EcsEvent(EventKind.TASK, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "release"),
    [
        pytest.param(task("shop"), "shop", id="task-by-group"),
        pytest.param(task("", "ecs-svc/222"), "shop", id="task-by-startedBy-deployment"),
        pytest.param(task("", "ecs-svc/999"), None, id="task-of-an-unknown-deployment"),
        pytest.param(task("", "ci-run-7"), None, id="one-off-task"),
        pytest.param(task("shop", cluster="staging"), None, id="another-cluster"),
        pytest.param(task("shop", region="eu-west-1"), None, id="another-region"),
        pytest.param(task("shop", account=OTHER), None, id="same-names-in-another-account"),
        pytest.param(task("cart"), "cart", id="the-daemons-account"),
        pytest.param(task("cart", account=OTHER), "cart-eu", id="a-roleArn-account"),
        pytest.param(task("shop", account=""), "shop", id="no-account-said"),
        pytest.param(
            EcsEvent(
                EventKind.SERVICE_ACTION,
                account=ACCOUNT,
                region="us-east-1",
                service="shop",
                name="SERVICE_STEADY_STATE",
            ),
            "shop",
            id="old-arn-format-no-cluster-unique-service",
        ),
        pytest.param(
            EcsEvent(EventKind.SERVICE_ACTION, region="us-east-1", service="cart"),
            None,
            id="old-arn-format-ambiguous",
        ),
        pytest.param(EcsEvent(EventKind.OTHER, service="shop"), None, id="not-ecs"),
        pytest.param(EcsEvent(EventKind.MALFORMED), None, id="malformed"),
    ],
)
def test_an_event_is_routed_to_the_release_owning_its_service(
    router: EventRouter, event: EcsEvent, release: str | None
) -> None:
    assert router.release_of(event) == release


def test_a_releases_old_deployments_stop_routing_once_it_is_observed_again(
    router: EventRouter,
) -> None:
    router.observed("shop", ["ecs-svc/333"])
    assert router.release_of(task("", "ecs-svc/111")) is None
    assert router.release_of(task("", "ecs-svc/333")) == "shop"
    router.forget("shop")
    assert router.release_of(task("", "ecs-svc/333")) is None


CRASH = "EssentialContainerExited: Essential container in task exited; container app exit code 1"
SCALE_IN = "ServiceSchedulerInitiated: Scaling activity initiated by (deployment ecs-svc/1)"


def test_only_the_first_word_of_a_failing_task_is_news(router: EventRouter) -> None:
    crashed = task("shop", name="STOPPING/STOPPED", task="arn:task/1", stop=CRASH)
    assert router.news("shop", crashed) is True
    assert router.news("shop", task("shop", task="arn:task/1", stop=CRASH)) is False  # STOPPED
    assert router.news("shop", task("shop", task="arn:task/2", stop=SCALE_IN)) is False
    assert router.news("shop", task("shop", task="arn:task/3", stop="stopped")) is True


def test_the_start_of_ecsops_own_deployment_is_no_news(router: EventRouter) -> None:
    def deployment(name: str, deployment_id: str) -> EcsEvent:
        return EcsEvent(EventKind.DEPLOYMENT, service="shop", name=name, deployment=deployment_id)

    router.started("shop", "ecs-svc/333")
    assert router.news("shop", deployment("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/333")) is False
    assert router.news("shop", deployment("SERVICE_DEPLOYMENT_COMPLETED", "ecs-svc/333")) is True
    assert router.news("shop", deployment("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/444")) is True
    assert router.release_of(task("", "ecs-svc/333")) == "shop"  # its tasks are routed


@pytest.mark.parametrize(
    ("event", "worth"),
    [
        pytest.param(task(name="STOPPING/STOPPED", stop=CRASH), True, id="task-crashed"),
        pytest.param(task(name="STOPPING/STOPPED", stop=SCALE_IN), False, id="task-scaled-in"),
        pytest.param(task(name="PENDING/RUNNING", stopping=False), False, id="task-starting"),
        pytest.param(
            EcsEvent(EventKind.DEPLOYMENT, name="SERVICE_DEPLOYMENT_IN_PROGRESS"),
            True,
            id="deployment",
        ),
        pytest.param(
            EcsEvent(EventKind.SERVICE_ACTION, name="SERVICE_TASK_START_IMPAIRED"),
            True,
            id="service-action",
        ),
        pytest.param(EcsEvent(EventKind.OTHER), False, id="other"),
    ],
)
def test_news_worth_a_look(event: EcsEvent, worth: bool) -> None:
    assert worth_a_look(event) is worth
