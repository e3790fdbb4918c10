"""Steps in the decision: migrations before a deploy, smoke tests in the bake, once each.

Table-driven over what a pass read (``Observation.steps``): the records on the
revision, the tasks found by ``startedBy``. ``docs/design.md``, "Steps".
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

import pytest

from builders import NOW, memory_tags, service, task_definition
from builders import deployment as build_deployment
from builders import release as build_release
from ecsop.aws import ecs_mapping
from ecsop.controller import step_probe
from ecsop.decision import actions, situation, steps
from ecsop.decision import decide as reconciler
from ecsop.decision.actions import (
    Deploy,
    RecordFailure,
    RecordLastGood,
    RecordStep,
    Rollback,
    RunStep,
    StepRunning,
    StopStep,
    Wait,
)
from ecsop.decision.ecs_state import (
    ContainerLogs,
    DeploymentStatus,
    Fingerprint,
    RolloutState,
    TaskDefinition,
)
from ecsop.decision.memory import (
    TAG_FINGERPRINT,
    TAG_RELEASE,
    StepRecord,
    StepState,
    step_records,
    step_tag,
)
from ecsop.decision.observation import Observation, Options, SpecState
from ecsop.decision.reasons import Failure, Phase, Reason
from ecsop.decision.step_state import (
    STARTED_BY_MAX,
    Overdue,
    StepKind,
    StepsSeen,
    StepTask,
    client_token,
    definition,
    started_by,
)
from ecsop.spec.loader import LoadedRelease
from ecsop.spec.model import ServiceRelease, fingerprint
from ecsop.spec.step import Step

OLD = "repo/api@sha256:" + "0" * 64
NEW = "repo/api@sha256:" + "1" * 64
SIDE = "repo/log@sha256:" + "9" * 64
LOGS = {"api": ContainerLogs("awslogs", "/shop/api", "app", "us-east-1")}
TD_OLD = replace(task_definition("api", 1, {"api": OLD, "log": SIDE}), logs=LOGS)
TD_NEW = replace(
    task_definition("api", 2, {"api": NEW, "log": SIDE}, {TAG_RELEASE: "api-prod", "team": "shop"}),
    logs=LOGS,
)
TDS = {td.arn: td for td in (TD_OLD, TD_NEW)}
FP_NEW = Fingerprint(fingerprint({"api": NEW}))
MIGRATE = {"name": "migrate", "container": "api", "command": ["migrate"], "timeoutSeconds": 300}
SEED = {"name": "seed", "container": "api", "command": ["seed"]}
SMOKE = {"name": "smoke", "container": "api", "command": ["smoke"], "timeoutSeconds": 120}


def release(image: str = NEW, **spec: Any) -> ServiceRelease:
    spec.setdefault("preDeploy", [MIGRATE])
    return build_release(containers={"api": image}, **spec)


def task(
    state: str = "RUNNING", *, age: float = 60, exit_code: int | None = None, stopping: bool = False
) -> StepTask:
    stopped = state == "STOPPED"
    return StepTask(
        arn="arn:aws:ecs:us-east-1:111122223333:task/prod/0123456789abcdef0123456789abcdef",
        last_status=state,
        desired_status="STOPPED" if stopped or stopping else "RUNNING",
        created_at=NOW - timedelta(seconds=age),
        stopped_at=NOW - timedelta(seconds=1) if stopped else None,
        exit_code=exit_code,
        stop_code="EssentialContainerExited" if stopped else "",
        stopped_reason="Essential container in task exited" if stopped else "",
    )


def seen(
    kind: StepKind = StepKind.PRE_DEPLOY,
    *,
    revision: TaskDefinition | None = None,
    records: dict[str, StepRecord] | None = None,
    tasks: dict[str, tuple[StepTask, ...]] | None = None,
    elsewhere: tuple[str, ...] = (),
    overdue: tuple[Overdue, ...] = (),
) -> StepsSeen:
    return StepsSeen(
        kind=kind,
        fingerprint=FP_NEW,
        revision=revision,
        base=TD_OLD,
        records=records or {},
        tasks=tasks or {},
        elsewhere=elsewhere,
        overdue=overdue,
    )


def out_of_date(steps_seen: StepsSeen | None) -> Observation:
    """Steady on the old release (proven), the spec names the new one."""
    return Observation(
        service(build_deployment(TD_OLD), tags=memory_tags(last_good=TD_OLD.arn)),
        TDS,
        steps=steps_seen,
    )


def baking(steps_seen: StepsSeen | None, baked: float = 3000) -> Observation:
    """Steady on the new release, bake over, not yet proven."""
    return Observation(
        service(
            build_deployment(TD_NEW, updated_ago=baked), tags=memory_tags(last_good=TD_OLD.arn)
        ),
        TDS,
        steps=steps_seen,
    )


def decide(rel: ServiceRelease, obs: Observation, spec: SpecState | None = None) -> actions.Action:
    return reconciler.decide(rel, obs, NOW, Options(active_poll_seconds=5), spec)


STARTED = StepRecord(StepState.STARTED, 1, int(NOW.timestamp()) - 60)
SUCCEEDED = StepRecord(StepState.SUCCEEDED, 1, 1, "t1", 0)
FAILED = StepRecord(StepState.FAILED, 1, 1, "0123456789abcdef", 3, "EssentialContainerExited")


@pytest.mark.parametrize(
    ("rel", "obs", "expected"),
    [
        pytest.param(
            release(),
            out_of_date(None),
            (Wait, Phase.PROGRESSING, Reason.STEP_BLOCKED),
            id="unread-starts-nothing",
        ),
        pytest.param(
            release(),
            out_of_date(seen()),
            (RunStep, Phase.PROGRESSING, Reason.RUNNING_STEP),
            id="first-run-registers-the-revision",
        ),
        pytest.param(
            release(),
            out_of_date(seen(revision=TD_NEW, records={"migrate": STARTED})),
            (RunStep, Phase.PROGRESSING, Reason.RUNNING_STEP),
            id="started-no-task-yet-sends-the-same-runtask",
        ),
        pytest.param(
            release(),
            out_of_date(
                seen(
                    revision=TD_NEW,
                    records={"migrate": replace(STARTED, at=int(NOW.timestamp()) - 3001)},
                )
            ),
            (RecordStep, Phase.DEGRADED, Reason.STEP_FINISHED),
            id="started-long-ago-and-gone-is-lost-not-rerun",
        ),
        pytest.param(
            release(),
            out_of_date(
                seen(revision=TD_NEW, records={"migrate": STARTED}, tasks={"migrate": (task(),)})
            ),
            (StepRunning, Phase.PROGRESSING, Reason.RUNNING_STEP),
            id="running",
        ),
        pytest.param(
            release(),
            out_of_date(
                seen(
                    revision=TD_NEW,
                    records={"migrate": STARTED},
                    tasks={"migrate": (task(age=301),)},
                )
            ),
            (StopStep, Phase.DEGRADED, Reason.STEP_FINISHED),
            id="past-its-timeout-is-stopped",
        ),
        pytest.param(
            release(),
            out_of_date(
                seen(
                    revision=TD_NEW,
                    records={"migrate": STARTED},
                    tasks={"migrate": (task("STOPPING", age=301, stopping=True),)},
                )
            ),
            (StepRunning, Phase.PROGRESSING, Reason.RUNNING_STEP),
            id="past-its-timeout-but-already-stopping",
        ),
        pytest.param(
            release(),
            out_of_date(
                seen(
                    revision=TD_NEW,
                    records={"migrate": STARTED},
                    tasks={"migrate": (task("STOPPED", exit_code=0),)},
                )
            ),
            (RecordStep, Phase.PROGRESSING, Reason.STEP_FINISHED),
            id="exited-0-is-recorded-succeeded",
        ),
        pytest.param(
            release(),
            out_of_date(
                seen(
                    revision=TD_NEW,
                    records={"migrate": STARTED},
                    tasks={"migrate": (task("STOPPED", exit_code=3),)},
                )
            ),
            (RecordStep, Phase.DEGRADED, Reason.STEP_FINISHED),
            id="exited-3-is-recorded-failed",
        ),
        pytest.param(
            release(),
            out_of_date(seen(revision=TD_NEW, records={"migrate": FAILED})),
            (Wait, Phase.DEGRADED, Reason.STEP_FAILED),
            id="failed-deploys-nothing",
        ),
        pytest.param(
            release(),
            out_of_date(
                seen(revision=TD_NEW, records={"migrate": FAILED}, tasks={"migrate": (task(),)})
            ),
            (StopStep, Phase.DEGRADED, Reason.STEP_FINISHED),
            id="failed-but-still-running-is-stopped-again",
        ),
        pytest.param(
            release(),
            out_of_date(seen(revision=TD_NEW, records={"migrate": SUCCEEDED})),
            (Deploy, Phase.PROGRESSING, Reason.DEPLOYING),
            id="succeeded-deploys",
        ),
        pytest.param(
            release(preDeploy=[MIGRATE, SEED]),
            out_of_date(seen(revision=TD_NEW, records={"migrate": SUCCEEDED})),
            (RunStep, Phase.PROGRESSING, Reason.RUNNING_STEP),
            id="in-order-the-next-step",
        ),
        pytest.param(
            release(),
            out_of_date(seen(revision=TD_NEW, elsewhere=("step migrate of abc (task 1)",))),
            (Wait, Phase.PROGRESSING, Reason.STEP_BLOCKED),
            id="an-earlier-specs-migration-runs",
        ),
        pytest.param(
            release(preDeploy=[{**MIGRATE, "container": "worker"}]),
            out_of_date(seen(revision=TD_NEW)),
            (Wait, Phase.INVALID, Reason.STEP_BLOCKED),
            id="unknown-container",
        ),
        pytest.param(
            release(),
            out_of_date(
                seen(
                    revision=replace(TD_NEW, tags={f"user-{i}": "x" for i in range(50)}),
                )
            ),
            (Wait, Phase.DEGRADED, Reason.STEP_BLOCKED),
            id="no-room-for-its-record",
        ),
        pytest.param(
            release(OLD),
            Observation(
                service(build_deployment(TD_NEW), tags=memory_tags(last_good=TD_OLD.arn)),
                TDS,
                steps=None,
            ),
            (Deploy, Phase.PROGRESSING, Reason.DEPLOYING),
            id="back-to-the-last-goods-release-runs-none",
        ),
        pytest.param(
            release(),
            Observation(
                service(
                    build_deployment(TD_NEW, RolloutState.IN_PROGRESS, age=60, failed=3),
                    build_deployment(TD_OLD, status=DeploymentStatus.ACTIVE),
                    tags=memory_tags(last_good=TD_OLD.arn),
                ),
                TDS,
            ),
            (Rollback, Phase.ROLLING_BACK, Reason.ROLLING_BACK),
            id="rollbacks-never-run-steps",
        ),
        # --- verify, in the bake ---
        pytest.param(
            release(preDeploy=[], verify=[SMOKE]),
            baking(seen(StepKind.VERIFY, revision=TD_NEW)),
            (RunStep, Phase.PROGRESSING, Reason.RUNNING_STEP),
            id="verify-starts-in-the-bake",
        ),
        pytest.param(
            release(preDeploy=[], verify=[SMOKE]),
            baking(
                seen(
                    StepKind.VERIFY,
                    revision=TD_NEW,
                    records={"smoke": STARTED},
                    tasks={"smoke": (task(),)},
                )
            ),
            (StepRunning, Phase.PROGRESSING, Reason.RUNNING_STEP),
            id="verify-running-holds-the-bake",
        ),
        pytest.param(
            release(preDeploy=[], verify=[SMOKE]),
            baking(seen(StepKind.VERIFY, revision=TD_NEW, records={"smoke": FAILED})),
            (Rollback, Phase.ROLLING_BACK, Reason.ROLLING_BACK),
            id="verify-failed-rolls-back",
        ),
        pytest.param(
            release(preDeploy=[], verify=[SMOKE], rollback={"automatic": False}),
            baking(seen(StepKind.VERIFY, revision=TD_NEW, records={"smoke": FAILED})),
            (RecordFailure, Phase.DEGRADED, Reason.RELEASE_FAILED),
            id="verify-failed-without-automatic-rollback-is-recorded",
        ),
        pytest.param(
            release(preDeploy=[], verify=[SMOKE]),
            baking(seen(StepKind.VERIFY, revision=TD_NEW, records={"smoke": SUCCEEDED})),
            (RecordLastGood, Phase.SYNCED, Reason.BAKED),
            id="verify-succeeded-proves-it",
        ),
        pytest.param(
            release(preDeploy=[], verify=[SMOKE]),
            baking(seen(StepKind.VERIFY, revision=TD_NEW, records={"smoke": SUCCEEDED}), 10),
            (Wait, Phase.PROGRESSING, Reason.BAKING),
            id="verify-succeeded-bake-goes-on",
        ),
    ],
)
def test_step_decision(
    rel: ServiceRelease, obs: Observation, expected: tuple[type[actions.Action], Phase, Reason]
) -> None:
    action = decide(rel, obs)
    assert (type(action), action.phase, action.reason) == expected, action.message
    if isinstance(action, RunStep):
        assert action.record.state is StepState.STARTED
        assert action.started_by == started_by("api-prod", FP_NEW, action.step, 1)
        assert action.task_tags[TAG_FINGERPRINT] == FP_NEW
        if action.kind == StepKind.PRE_DEPLOY:
            assert action.deploy is not None and action.deploy.fingerprint == FP_NEW
        else:
            assert action.revision == TD_NEW.arn and action.deploy is None
    if isinstance(action, Rollback):
        assert action.to == TD_OLD.arn
        assert action.failure is (Failure.VERIFY if rel.spec.verify else Failure.FAILED_TASKS)
    if isinstance(action, RecordFailure):
        assert action.failure is Failure.VERIFY


def test_a_resent_runtask_is_the_same_request() -> None:
    """Killed between the record and RunTask, the next pass sends the very same RunTask."""
    first = decide(release(), out_of_date(seen(revision=TD_NEW)))
    again = decide(release(), out_of_date(seen(revision=TD_NEW, records={"migrate": STARTED})))
    assert isinstance(first, RunStep) and isinstance(again, RunStep)
    assert (again.started_by, again.client_token) == (first.started_by, first.client_token)
    assert again.record.at == STARTED.at, "the first start time is kept"


def test_a_retried_step_is_a_new_attempt_with_its_own_task_identity() -> None:
    retried = FAILED.retried()
    action = decide(release(), out_of_date(seen(revision=TD_NEW, records={"migrate": retried})))
    assert isinstance(action, RunStep)
    assert action.started_by == started_by("api-prod", FP_NEW, "migrate", 2)
    assert action.started_by != started_by("api-prod", FP_NEW, "migrate", 1)
    assert "attempt 2" in action.message


def test_a_failed_migration_says_what_and_where_its_logs_are() -> None:
    action = decide(release(), out_of_date(seen(revision=TD_NEW, records={"migrate": FAILED})))
    for words in (
        "pre-deploy step migrate failed (attempt 1)",
        "container api exited with code 3",
        "stop code EssentialContainerExited",
        "CloudWatch Logs group /shop/api, stream app/api/0123456789abcdef",
        "ecsop retry api-prod",
    ):
        assert words in action.message, action.message


@pytest.mark.parametrize(
    "fixed",
    [
        pytest.param({"command": ["migrate", "--fake-initial"]}, id="command"),
        pytest.param({"environment": {"DJANGO_SETTINGS_MODULE": "prod"}}, id="environment"),
        pytest.param({"timeoutSeconds": 3600}, id="timeout"),
    ],
)
def test_a_failed_step_the_spec_fixed_runs_again_with_the_same_images(
    fixed: dict[str, Any],
) -> None:
    """Same images, same fingerprint: the failure was of the old command, not of the fix.

    Before, the release stayed Degraded ("fix it and change the spec") after
    the person did exactly that, until `ecsop retry`.
    """
    old = definition(Step.model_validate(MIGRATE))
    failed = replace(FAILED, definition=old)
    obs = out_of_date(seen(revision=TD_NEW, records={"migrate": failed}))
    unchanged = decide(release(), obs)
    assert isinstance(unchanged, Wait) and unchanged.phase is Phase.DEGRADED
    assert "fix its command, environment, timeout or images" in unchanged.message
    rel = release(preDeploy=[{**MIGRATE, **fixed}])
    action = decide(rel, obs)
    assert isinstance(action, RunStep), action.message
    assert action.started_by == started_by("api-prod", FP_NEW, "migrate", 2)
    assert action.record.state is StepState.STARTED and action.record.attempt == 2
    assert action.record.definition == definition(rel.spec.pre_deploy[0]) != old
    still_running = out_of_date(
        seen(revision=TD_NEW, records={"migrate": failed}, tasks={"migrate": (task(),)})
    )
    assert isinstance(decide(rel, still_running), StopStep), "the failed task is stopped first"


@pytest.mark.parametrize(
    "failed_task",
    [
        pytest.param(task(age=400, stopping=True), id="stoptask-sent-sigterm-grace"),
        pytest.param(
            replace(task(age=400), last_status="DEACTIVATING", desired_status="STOPPED"),
            id="deactivating",
        ),
    ],
)
def test_a_fixed_step_waits_for_its_failed_attempt_to_stop(failed_task: StepTask) -> None:
    """The migration timed out (StopTask sent) or failed; the person fixes the spec while
    ECS still stops the failed task (its container in its SIGTERM grace, or ignoring
    SIGTERM). Before, the next pass ran the fixed attempt at once: two copies of the
    migration against one database. ``ecsop retry`` already refused (``StillStopping``)."""
    failed = replace(FAILED, definition=definition(Step.model_validate(MIGRATE)))
    rel = release(preDeploy=[{**MIGRATE, "command": ["migrate", "--fake-initial"]}])
    stopping = out_of_date(
        seen(revision=TD_NEW, records={"migrate": failed}, tasks={"migrate": (failed_task,)})
    )
    action = decide(rel, stopping)
    assert isinstance(action, StepRunning), action.message
    assert action.reason is Reason.STEP_BLOCKED and action.phase is Phase.PROGRESSING
    assert "has not stopped yet: attempt 2 waits for it" in action.message
    stopped = replace(failed_task, last_status="STOPPED", desired_status="STOPPED")
    gone = out_of_date(
        seen(revision=TD_NEW, records={"migrate": failed}, tasks={"migrate": (stopped,)})
    )
    action = decide(rel, gone)
    assert isinstance(action, RunStep) and action.record.attempt == 2, action.message


def test_a_failure_records_the_definition_in_force_when_it_failed() -> None:
    """The timeout is raised while the migration runs (a new ``def=``), then it fails
    anyway: it failed as the spec stands, so it is not run again by itself (before, the
    edit made mid-run started attempt 2 as soon as attempt 1 was recorded failed)."""
    raised = release(preDeploy=[{**MIGRATE, "timeoutSeconds": 600}])
    started = replace(STARTED, definition=definition(Step.model_validate(MIGRATE)), limit=300)
    hung = out_of_date(
        seen(revision=TD_NEW, records={"migrate": started}, tasks={"migrate": (task(age=700),)})
    )
    timed_out = decide(raised, hung)
    assert isinstance(timed_out, StopStep) and timed_out.record is not None
    assert timed_out.record.definition == definition(raised.spec.pre_deploy[0])
    exited = replace(task("STOPPED"), exit_code=3)
    ran = out_of_date(
        seen(revision=TD_NEW, records={"migrate": started}, tasks={"migrate": (exited,)})
    )
    recorded = decide(raised, ran)
    assert isinstance(recorded, RecordStep)
    assert recorded.record.definition == definition(raised.spec.pre_deploy[0])
    after = out_of_date(seen(revision=TD_NEW, records={"migrate": recorded.record}))
    waits = decide(raised, after)
    assert isinstance(waits, Wait) and waits.reason is Reason.STEP_FAILED, waits.message
    fixed = release(preDeploy=[{**MIGRATE, "timeoutSeconds": 900}])
    assert isinstance(decide(fixed, after), RunStep), "an edit after the failure runs it again"


def test_a_failure_of_an_unknown_or_the_same_definition_waits_and_a_success_never_reruns() -> None:
    rel = release(preDeploy=[{**MIGRATE, "command": ["migrate", "--fake-initial"]}])
    older = decide(rel, out_of_date(seen(revision=TD_NEW, records={"migrate": FAILED})))
    assert isinstance(older, Wait) and older.reason is Reason.STEP_FAILED
    done = replace(SUCCEEDED, definition="0a1b2c3d")
    assert isinstance(
        decide(rel, out_of_date(seen(revision=TD_NEW, records={"migrate": done}))), Deploy
    )


def test_a_timeout_records_the_failure_before_stopping() -> None:
    obs = out_of_date(
        seen(revision=TD_NEW, records={"migrate": STARTED}, tasks={"migrate": (task(age=400),)})
    )
    action = decide(release(), obs)
    assert isinstance(action, StopStep) and action.record is not None
    assert action.record.state is StepState.FAILED
    assert "timed out after 300s" in action.record.why
    assert action.task_arn == task().arn


def test_plan_says_which_steps_would_run() -> None:
    action = decide(release(preDeploy=[MIGRATE, SEED]), out_of_date(seen()))
    assert isinstance(action, RunStep)
    assert action.pending == ("migrate", "seed")
    assert "then seed, then deploy" in action.message


def test_an_invalid_spec_starts_no_step_but_stops_a_hung_one() -> None:
    broken = SpecState(problems=("shop.yaml:3: YAML syntax error",))
    assert isinstance(decide(release(), out_of_date(seen()), broken), Wait)
    hung = out_of_date(
        seen(revision=TD_NEW, records={"migrate": STARTED}, tasks={"migrate": (task(age=400),)})
    )
    assert isinstance(decide(release(), hung, broken), StopStep)


def test_steps_are_read_only_where_they_may_run() -> None:
    rel = release(verify=[SMOKE])
    options = Options()

    def query(obs: Observation) -> StepKind | None:
        view = situation.classify(rel, obs, options)
        assert situation.Probe.STEPS in situation.probes_for(view) or view.situation not in (
            situation.Situation.OUT_OF_DATE,
            situation.Situation.BAKING,
        )
        found = steps.query(rel, obs, view, options)
        return found.kind if found else None

    assert query(out_of_date(None)) is StepKind.PRE_DEPLOY
    assert query(baking(None)) is StepKind.VERIFY
    synced = Observation(
        service(build_deployment(TD_NEW), tags=memory_tags(last_good=TD_NEW.arn)), TDS
    )
    assert query(synced) is None
    rolling = Observation(
        service(
            build_deployment(TD_NEW, RolloutState.IN_PROGRESS, age=60),
            build_deployment(TD_OLD, status=DeploymentStatus.ACTIVE),
            tags=memory_tags(last_good=TD_OLD.arn),
        ),
        TDS,
    )
    assert query(rolling) is None


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(StepRecord(), id="pending"),
        pytest.param(STARTED, id="started"),
        pytest.param(SUCCEEDED, id="succeeded"),
        pytest.param(FAILED, id="failed"),
        pytest.param(FAILED.retried(), id="retried"),
        pytest.param(replace(FAILED, definition="0a1b2c3d", limit=86400), id="with-its-definition"),
        pytest.param(
            replace(FAILED, why="CannotPullContainerError: pull (access denied) 'x' → y"),
            id="ecs-words-made-tag-safe",
        ),
    ],
)
def test_a_step_record_survives_its_tag(record: StepRecord) -> None:
    value = record.value()
    assert len(value) <= 256
    assert all(c.isalnum() or c in " _.:/=+-@" for c in value), value
    read = step_records({step_tag("migrate"): value})["migrate"]
    assert replace(read, why="") == replace(record, why="")
    assert (
        read.why.split()
        == " ".join(
            "".join(c if c.isalnum() or c in " _.:/=+-@" else " " for c in record.why).split()
        ).split()
    )


def test_a_long_reason_is_cut_to_fit_a_tag() -> None:
    value = replace(FAILED, why="x " * 400).value()
    assert len(value) <= 256 and value.startswith("state=failed try=1")


@pytest.mark.parametrize("attempt", [1, 12, 9999, 10**6])
def test_task_identities_fit_ecs_limits(attempt: int) -> None:
    name = "a" * 63
    assert len(started_by(name, FP_NEW, "a" * 32, attempt)) <= STARTED_BY_MAX
    assert len(client_token(name, FP_NEW, "a" * 32, attempt)) <= 64
    assert started_by(name, FP_NEW, "migrate", attempt) != started_by(
        name + "b", FP_NEW, "migrate", attempt
    ), "two releases sharing a fingerprint never share a task"


CLOSED = {"kind": "deny", "schedule": "0 0 * * *", "durationMinutes": 1440}


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        pytest.param((task(age=400),), StopStep, id="past-its-timeout-is-stopped"),
        pytest.param((task("STOPPED", exit_code=0),), RecordStep, id="finished-is-recorded"),
        pytest.param((task(age=60),), StepRunning, id="running-is-shown-and-polled"),
    ],
)
def test_a_hold_that_begins_mid_migration_still_watches_the_migration(
    tasks: tuple[StepTask, ...], expected: type
) -> None:
    """The deploy window closes (or the policy file breaks) while a migration runs.

    The hold keeps the deploy and any new step from starting, but the step in
    flight is still watched, as for an invalid spec: a hung migration is stopped
    at its timeout, not at the next window days later, and its outcome recorded.
    """
    obs = out_of_date(seen(revision=TD_NEW, records={"migrate": STARTED}, tasks={"migrate": tasks}))
    action = decide(release(deployWindows=[CLOSED]), obs)
    assert isinstance(action, expected), action.message
    nothing_started = out_of_date(seen(revision=TD_NEW))
    held = decide(release(deployWindows=[CLOSED]), nothing_started)
    assert held.reason is Reason.OUTSIDE_DEPLOY_WINDOW, "a hold never starts a step"
    done = out_of_date(seen(revision=TD_NEW, records={"migrate": SUCCEEDED}))
    held = decide(release(deployWindows=[CLOSED]), done)
    assert held.reason is Reason.OUTSIDE_DEPLOY_WINDOW, "nor deploys"


def test_a_revision_whose_smoke_test_failed_is_not_deployed_again_to_fail_it_again() -> None:
    """A revert at the worst moment: F2's smoke test failed (rolled back), F3 failed too
    (the service's failed record now names F3), and the spec goes back to F2.

    Before, F2 was deployed to every task, and only once its rollout completed did
    the bake read its old failed verify record and roll it back: a known-bad
    revision served production for a whole rollout, without its smoke test even
    running. Now the deploy is held, Degraded, until `ecsop retry` (or a fix).
    """
    smoke_failed = replace(FAILED, why="smoke exited 1")
    failed_revision = replace(TD_NEW, tags={**TD_NEW.tags, step_tag("smoke"): smoke_failed.value()})
    rel = release(preDeploy=[], verify=[SMOKE])
    obs = Observation(
        service(
            build_deployment(TD_OLD),
            tags=memory_tags(last_good=TD_OLD.arn, failed="f3f3f3f3f3f3f3f3"),
        ),
        {TD_OLD.arn: TD_OLD, TD_NEW.arn: failed_revision},
        steps=seen(revision=failed_revision, records=step_records(failed_revision.tags)),
    )
    view = situation.classify(rel, obs, Options())
    query = steps.query(rel, obs, view, Options())
    assert query is not None, "the revision a deploy would use is read before deploying"
    action = decide(rel, obs)
    assert not isinstance(action, Deploy)
    assert (action.phase, action.reason) == (Phase.DEGRADED, Reason.STEP_FAILED)
    assert "verify step smoke failed (attempt 1)" in action.message, action.message
    assert "ecsop retry api-prod" in action.message
    retried = replace(obs, steps=seen(revision=TD_NEW, records={"smoke": smoke_failed.retried()}))
    assert isinstance(decide(rel, retried), Deploy), "after `ecsop retry` it is deployed"
    unread = replace(obs, steps=None)
    assert isinstance(decide(rel, unread), Deploy), "verify-only releases deploy as before"


def test_an_earlier_specs_migration_past_its_own_timeout_is_stopped_not_waited_for() -> None:
    """A migration hangs; the person pushes a fix (another fingerprint) before its timeout.

    Before, nobody enforced the hung one's timeout once its spec moved on: the fix
    waited "for step migrate of ... to finish" for 25 hours (``STEP_SPAN_SECONDS``),
    then migrated concurrently with the hung one.
    """
    earlier = "arn:aws:ecs:us-east-1:111122223333:task-definition/api:7"
    started = replace(STARTED, at=int(NOW.timestamp()) - 400, limit=300)
    hung = task(age=400)
    overdue = Overdue(earlier, "migrate", "e" * 16, started, hung)
    text = "step migrate of eeeeeeeeeeeeeeee (an earlier spec, task 01234567)"
    action = decide(release(), out_of_date(seen(elsewhere=(text,), overdue=(overdue,))))
    assert isinstance(action, StopStep), action.message
    assert (action.revision, action.task_arn, action.step) == (earlier, hung.arn, "migrate")
    assert action.record is not None and action.record.state is StepState.FAILED
    assert "timed out after 300s" in action.record.why
    assert "an earlier spec" in action.message
    # Killed between that record and StopTask: stopped again, the failure not rewritten.
    failed = replace(overdue, record=action.record)
    again = decide(release(), out_of_date(seen(elsewhere=(text,), overdue=(failed,))))
    assert isinstance(again, StopStep) and again.record is None
    # Its container exited while the task runs on (not essential): stopped, not recorded.
    exited = replace(overdue, task=replace(hung, exit_code=0))
    left = decide(release(), out_of_date(seen(elsewhere=(text,), overdue=(exited,))))
    assert isinstance(left, StopStep) and left.record is None
    assert "exited with code 0" in left.message
    # Once ECS stops it, the fix waits for it to be gone, then migrates.
    stopping = decide(release(), out_of_date(seen(elsewhere=(text,))))
    assert isinstance(stopping, Wait) and stopping.reason is Reason.STEP_BLOCKED
    assert isinstance(decide(release(), out_of_date(seen())), RunStep)


def test_a_started_record_carries_the_timeout_it_was_started_with() -> None:
    action = decide(release(), out_of_date(seen()))
    assert isinstance(action, RunStep)
    assert action.record.limit == 300
    assert StepRecord.read(action.record.value()).limit == 300


@pytest.mark.parametrize("exit_code", [0, 3])
def test_a_step_container_that_exits_while_the_task_runs_on_is_judged_by_its_exit(
    exit_code: int,
) -> None:
    """The step's container is not ``essential``: its exit does not stop the task (the
    app container, essential, runs on). Before, the step ran "until its timeout" and was
    recorded failed ("timed out") however its container exited; the task ran on.
    """
    exited = replace(task(age=30), exit_code=exit_code)
    obs = out_of_date(
        seen(revision=TD_NEW, records={"migrate": STARTED}, tasks={"migrate": (exited,)})
    )
    action = decide(release(), obs)
    assert isinstance(action, StopStep), action.message
    assert action.record is None, "recorded once the task stopped, by the step's own exit"
    assert action.phase is Phase.PROGRESSING
    assert f"exited with code {exit_code}" in action.message
    stopping = replace(exited, desired_status="STOPPED")
    waiting = out_of_date(
        seen(revision=TD_NEW, records={"migrate": STARTED}, tasks={"migrate": (stopping,)})
    )
    assert isinstance(decide(release(), waiting), StepRunning)
    killed = replace(task("STOPPED", age=60), exit_code=exit_code)
    done = decide(
        release(),
        out_of_date(
            seen(revision=TD_NEW, records={"migrate": STARTED}, tasks={"migrate": (killed,)})
        ),
    )
    assert isinstance(done, RecordStep)
    assert done.outcome == ("succeeded" if exit_code == 0 else "failed")


@pytest.mark.parametrize(
    ("started_with", "spec_timeout", "stopped"),
    [
        pytest.param(3600, 300, False, id="lowered-mid-run-does-not-cut-it-short"),
        pytest.param(300, 3600, False, id="raised-mid-run-lets-it-finish"),
        pytest.param(300, 300, True, id="unchanged-times-out"),
        pytest.param(0, 300, True, id="recorded-by-an-earlier-ecsop"),
    ],
)
def test_a_timeout_edited_while_the_step_runs_never_cuts_it_short(
    started_with: int, spec_timeout: int, stopped: bool
) -> None:
    """Someone lowers ``timeoutSeconds`` (same images) while a migration runs. Before, the
    next pass killed the migration mid-way, at the new, shorter timeout."""
    record = replace(STARTED, limit=started_with)
    obs = out_of_date(
        seen(revision=TD_NEW, records={"migrate": record}, tasks={"migrate": (task(age=400),)})
    )
    action = decide(release(preDeploy=[{**MIGRATE, "timeoutSeconds": spec_timeout}]), obs)
    assert isinstance(action, StopStep if stopped else StepRunning), action.message


class _EarlierSpecGateway:
    """The ECS a probe reads: this release's revisions, and one task of an earlier spec's
    migration as DescribeTasks shows it (mapped by the real ``ecs_mapping.step_task``)."""

    def __init__(self, earlier: TaskDefinition, raw_task: dict[str, Any]) -> None:
        self.earlier = earlier
        self.raw_task = raw_task
        self.started_by = started_by("api-prod", "e" * 16, "migrate", 1)

    def fresh_revision(self, arn: str) -> TaskDefinition:
        return TD_NEW

    def release_revisions(self, family: str, release: str) -> list[TaskDefinition]:
        return [TD_NEW, self.earlier]

    def step_tasks(self, cluster: str, identity: str, container: str) -> tuple[StepTask, ...]:
        if identity != self.started_by:
            return ()
        return (ecs_mapping.step_task(self.raw_task, container),)


def _earlier_migration(
    age: float, exit_code: int | None = None
) -> tuple[TaskDefinition, dict[str, Any]]:
    record = replace(STARTED, at=int((NOW - timedelta(seconds=age)).timestamp()), limit=300)
    tags = {TAG_RELEASE: "api-prod", TAG_FINGERPRINT: "e" * 16, step_tag("migrate"): record.value()}
    earlier = task_definition("api", 7, {"api": OLD, "log": SIDE}, tags)
    api: dict[str, Any] = {"name": "api"} if exit_code is None else {"name": "api", "exitCode": 0}
    raw = {
        "taskArn": task().arn,
        "lastStatus": "RUNNING",
        "desiredStatus": "RUNNING",
        "createdAt": NOW - timedelta(seconds=age),
        "containers": [api, {"name": "log"}],
        "overrides": {
            "containerOverrides": [{"name": "api", "command": ["migrate"]}, {"name": "log"}]
        },
    }
    return earlier, raw


@pytest.mark.parametrize(
    ("age", "exit_code", "spec_timeout", "expected"),
    [
        pytest.param(400, None, 3600, "waits", id="timeout-raised-with-new-images-lets-it-run"),
        pytest.param(4000, None, 3600, "timed out after 3600s", id="past-the-raised-timeout"),
        pytest.param(400, None, 120, "timed out after 300s", id="lowered-keeps-its-own"),
        pytest.param(400, None, None, "timed out after 300s", id="step-gone-from-the-spec"),
        pytest.param(60, 0, 3600, "exited with code 0", id="container-exited-task-runs-on"),
    ],
)
def test_an_earlier_specs_migration_is_judged_through_the_probe(
    age: float, exit_code: int | None, spec_timeout: int | None, expected: str
) -> None:
    """A migration of the previous images runs (started with ``timeoutSeconds: 300``); the
    person pushes new images and raises the timeout to let it finish. Before, the probe
    judged it by its recorded 300s alone and it was recorded failed and stopped mid-way.
    Its step container exiting while the task runs on (not essential) was never seen: the
    probe looked for a container named ""."""
    step = {**MIGRATE, "name": "migrate" if spec_timeout else "migrate-v2"}
    if spec_timeout:
        step["timeoutSeconds"] = spec_timeout
    rel = release(preDeploy=[step])
    gateway = _EarlierSpecGateway(*_earlier_migration(age, exit_code))
    query = steps.StepQuery(
        StepKind.PRE_DEPLOY, FP_NEW, tuple(rel.spec.pre_deploy), revision=TD_NEW.arn
    )
    loaded = LoadedRelease(rel, "specs/api.yaml", 1, "us-east-1")
    obs = out_of_date(None)
    probed = step_probe._Reader(loaded, cast(Any, gateway), obs, query, None, NOW).read()
    assert probed.elsewhere, "the earlier spec's migration is seen running"
    action = decide(rel, replace(obs, steps=probed))
    if expected == "waits":
        assert isinstance(action, Wait) and not isinstance(action, StopStep), action.message
        assert "waiting for step migrate of eeeeeeeeeeeeeeee" in action.message
    else:
        assert isinstance(action, StopStep), action.message
        assert action.task_arn == task().arn and action.revision == gateway.earlier.arn
        assert expected in action.message, action.message
