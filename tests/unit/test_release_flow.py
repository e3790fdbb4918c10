"""The release flow in the decision: what holds a new release, in which order, and what never is.

Table-driven over ``decide`` (``deploying.held`` -> ``release_flow.hold``), on
the shared builders: a service steady on its last-good revision (images
``OLD``) whose spec moved on to ``NEW`` (situation OUT_OF_DATE).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from builders import NOW, image, memory_tags, service, task_definition
from builders import deployment as build_deployment
from builders import release as build_release
from ecsop.decision import decide as decision
from ecsop.decision.actions import Action, Deploy, RecordLastGood, Rollback, Wait
from ecsop.decision.ecs_state import DeploymentStatus, Fingerprint, RolloutState, TaskDefinition
from ecsop.decision.memory import (
    MAX_TAG_VALUE,
    TAG_APPROVAL,
    TAG_RELEASE,
    ApprovalRecord,
    proof_tags,
    proves,
)
from ecsop.decision.observation import Observation, Options
from ecsop.decision.reasons import Phase, Reason
from ecsop.decision.release_flow import windows
from ecsop.decision.release_flow.approval import content
from ecsop.decision.release_flow.hold import Need, needs
from ecsop.decision.release_flow.inputs import (
    DependencyState,
    FlowInputs,
    Found,
    Lookup,
    UpstreamProof,
)
from ecsop.decision.situation import classify
from ecsop.spec.model import ServiceRelease, fingerprint
from ecsop.spec.release_flow import DeployWindow

OLD, NEW = image("v1"), image("v2")
PROXY_OLD, PROXY_NEW = image("proxy-1", "proxy"), image("proxy-2", "proxy")
PUBLIC = "public.ecr.aws/nginx/nginx:1.27@sha256:" + "7" * 64
ROLE = "arn:aws:iam::111122223333:role/app-execution"
TD_OLD = replace(task_definition("api", 1, {"api": OLD, "proxy": PROXY_OLD}), execution_role=ROLE)
TD_NEW = replace(
    task_definition("api", 2, {"api": NEW, "proxy": PROXY_OLD}, {TAG_RELEASE: "api-prod"}),
    execution_role=ROLE,
)
TD_HAND = replace(task_definition("api", 3, {"api": image("hand"), "proxy": PROXY_OLD}))
TDS = {td.arn: td for td in (TD_OLD, TD_NEW, TD_HAND)}
FOUND = Lookup(Found.FOUND)
FP_NEW = Fingerprint(fingerprint({"api": NEW}))
DIGEST_NEW = "sha256:" + NEW.split("@sha256:")[1]
DENY_ALWAYS = {"kind": "deny", "schedule": "0 0 * * *", "durationMinutes": 1440}


def release(api: str = NEW, **spec: Any) -> ServiceRelease:
    return build_release(containers={"api": api}, **spec)


def flow(**fields: Any) -> FlowInputs:
    """Pre-flight passed for every image here; other inputs as given."""
    found = {OLD: FOUND, NEW: FOUND, PROXY_OLD: FOUND, PROXY_NEW: FOUND}
    return FlowInputs(**{"images": found, "roles": {ROLE: FOUND}, **fields})


def observe(
    running: TaskDefinition = TD_OLD, gathered: FlowInputs | None = None, **tags: str
) -> Observation:
    steady = build_deployment(running, RolloutState.COMPLETED)
    memory = memory_tags(last_good=TD_OLD.arn)
    return Observation(
        service=service(steady, tags={**memory, **tags}),
        task_definitions=TDS,
        flow=gathered if gathered is not None else flow(),
    )


def decide(rel: ServiceRelease, obs: Observation, now: datetime = NOW, **options: Any) -> Action:
    return decision.decide(rel, obs, now, Options(active_poll_seconds=5, **options))


def outcome(action: Action) -> tuple[type, Phase, Reason]:
    return type(action), action.phase, action.reason


# --- what holds a new release, and in which order ------------------------------------------


HELD = [
    pytest.param(release(), flow(), (Deploy, Phase.PROGRESSING, Reason.DEPLOYING), "", id="free"),
    pytest.param(
        release(),
        flow(images={NEW: Lookup(Found.MISSING, "ImageNotFound: Requested image not found")}),
        (Wait, Phase.DEGRADED, Reason.IMAGE_NOT_FOUND),
        NEW,
        id="image-missing",
    ),
    pytest.param(
        release(),
        flow(images={NEW: Lookup(Found.UNKNOWN, "AccessDeniedException: no")}),
        (Wait, Phase.DEGRADED, Reason.PREFLIGHT_UNAVAILABLE),
        "AccessDeniedException",
        id="image-unknown-is-never-found",
    ),
    pytest.param(
        release(),
        flow(images={}),
        (Wait, Phase.DEGRADED, Reason.PREFLIGHT_UNAVAILABLE),
        "not checked",
        id="ecr-image-not-looked-up",
    ),
    pytest.param(
        release(api=PUBLIC),
        flow(images={}),
        (Deploy, Phase.PROGRESSING, Reason.DEPLOYING),
        "",
        id="image-outside-ecr-skipped",
    ),
    pytest.param(
        release(),
        flow(roles={ROLE: Lookup(Found.MISSING, "NoSuchEntity: gone")}),
        (Wait, Phase.DEGRADED, Reason.EXECUTION_ROLE_NOT_FOUND),
        ROLE,
        id="execution-role-missing",
    ),
    pytest.param(
        release(),
        flow(roles={ROLE: Lookup(Found.SKIPPED, "in account 999")}),
        (Deploy, Phase.PROGRESSING, Reason.DEPLOYING),
        "",
        id="execution-role-of-another-account-skipped",
    ),
    pytest.param(
        release(promotion={"from": ["api-staging"]}),
        flow(proofs={"api-staging": UpstreamProof(frozenset({DIGEST_NEW}))}),
        (Deploy, Phase.PROGRESSING, Reason.DEPLOYING),
        "",
        id="promotion-proven",
    ),
    pytest.param(
        release(promotion={"from": ["api-staging"]}),
        flow(proofs={"api-staging": UpstreamProof()}),
        (Wait, Phase.PROGRESSING, Reason.PROMOTION_BLOCKED),
        f"api@{DIGEST_NEW[:19]}… not yet proven by api-staging",
        id="promotion-not-proven",
    ),
    pytest.param(
        release(promotion={"from": ["api-staging", "api-canary"]}),
        flow(proofs={"api-staging": UpstreamProof(frozenset({DIGEST_NEW}))}),
        (Wait, Phase.PROGRESSING, Reason.PROMOTION_BLOCKED),
        "cannot read what api-canary proved",
        id="promotion-every-upstream",
    ),
    pytest.param(
        release(promotion={"from": ["api-staging"]}),
        flow(proofs={"api-staging": UpstreamProof(error="AccessDenied: no")}),
        (Wait, Phase.PROGRESSING, Reason.PROMOTION_BLOCKED),
        "AccessDenied",
        id="promotion-unreadable",
    ),
    pytest.param(
        release(dependsOn=["db-schema"]),
        flow(dependencies={"db-schema": DependencyState(True, "Synced")}),
        (Deploy, Phase.PROGRESSING, Reason.DEPLOYING),
        "",
        id="dependency-synced",
    ),
    pytest.param(
        release(dependsOn=["db-schema"]),
        flow(dependencies={"db-schema": DependencyState(False, "rolling out")}),
        (Wait, Phase.PROGRESSING, Reason.WAITING_FOR_DEPENDENCY),
        "db-schema (rolling out)",
        id="dependency-rolling-out",
    ),
    pytest.param(
        release(rollout={"approval": "manual"}),
        flow(),
        (Wait, Phase.PROGRESSING, Reason.AWAITING_APPROVAL),
        "ecsop approve api-prod",
        id="approval-missing",
    ),
    pytest.param(
        release(deployWindows=[DENY_ALWAYS]),
        flow(),
        (Wait, Phase.PROGRESSING, Reason.OUTSIDE_DEPLOY_WINDOW),
        "deny window '0 0 * * *' (1440 min, UTC) is open until",
        id="deny-window-of-the-spec",
    ),
    pytest.param(
        release(),
        flow(windows=(DeployWindow.model_validate(DENY_ALWAYS),)),
        (Wait, Phase.PROGRESSING, Reason.OUTSIDE_DEPLOY_WINDOW),
        "deny",
        id="deny-window-of-the-policy-file",
    ),
    pytest.param(
        release(),
        flow(policy_problems=("ecsop-policy.yaml:7: spec.deployWindows[0].schedule: bad",)),
        (Wait, Phase.INVALID, Reason.INVALID_POLICY),
        "ecsop-policy.yaml:7",
        id="broken-policy-file-holds",
    ),
    pytest.param(
        release(promotion={"from": ["api-staging"]}, rollout={"approval": "manual"}),
        flow(
            images={NEW: Lookup(Found.MISSING, "ImageNotFound")},
            proofs={"api-staging": UpstreamProof()},
        ),
        (Wait, Phase.DEGRADED, Reason.IMAGE_NOT_FOUND),
        "",
        id="order-preflight-before-promotion",
    ),
    pytest.param(
        release(promotion={"from": ["s"]}, dependsOn=["d"], rollout={"approval": "manual"}),
        flow(proofs={"s": UpstreamProof()}, dependencies={"d": DependencyState(False, "x")}),
        (Wait, Phase.PROGRESSING, Reason.PROMOTION_BLOCKED),
        "",
        id="order-promotion-before-ordering",
    ),
    pytest.param(
        release(dependsOn=["d"], rollout={"approval": "manual"}),
        flow(dependencies={"d": DependencyState(False, "baking")}),
        (Wait, Phase.PROGRESSING, Reason.WAITING_FOR_DEPENDENCY),
        "",
        id="order-ordering-before-approval",
    ),
    pytest.param(
        release(rollout={"approval": "manual"}, deployWindows=[DENY_ALWAYS]),
        flow(),
        (Wait, Phase.PROGRESSING, Reason.AWAITING_APPROVAL),
        "",
        id="order-approval-before-windows",
    ),
]


@pytest.mark.parametrize(("rel", "gathered", "expected", "says"), HELD)
def test_what_holds_a_new_release(
    rel: ServiceRelease, gathered: FlowInputs, expected: tuple[type, Phase, Reason], says: str
) -> None:
    action = decide(rel, observe(gathered=gathered))
    assert outcome(action) == expected, action.message
    assert says in action.message


def test_an_approval_counts_for_its_fingerprint_only() -> None:
    rel = release(rollout={"approval": "manual"})
    approved = ApprovalRecord(
        FP_NEW, "arn:aws:iam::111122223333:user/alice", "2026-11-23T11:00Z", content(rel)
    )
    action = decide(rel, observe(**approved.tags()))
    assert isinstance(action, Deploy)
    earlier = ApprovalRecord(Fingerprint("0123456789abcdef"), "alice", "t").tags()
    action = decide(rel, observe(**earlier))
    assert action.reason is Reason.AWAITING_APPROVAL
    assert "the approval on the service is for 0123456789abcdef" in action.message


MIGRATE = {"name": "migrate", "container": "api", "command": ["migrate"]}


def test_an_approval_is_of_the_spec_as_approved_not_of_its_images_alone() -> None:
    """Approved while the deploy waits for its window; then a commit keeps the images and
    edits the migration. The fingerprint (images) still matches: the new migration ran
    at the window without anyone approving it. "A later spec change needs a new approval"."""
    approved_spec = release(rollout={"approval": "manual"}, preDeploy=[MIGRATE])
    approved = ApprovalRecord(FP_NEW, "alice", "2026-11-23T11:00Z", content(approved_spec))
    edited = release(
        rollout={"approval": "manual"}, preDeploy=[{**MIGRATE, "command": ["drop-tables"]}]
    )
    assert edited.fingerprint() == approved_spec.fingerprint()
    action = decide(edited, observe(**approved.tags()))
    assert action.reason is Reason.AWAITING_APPROVAL, action.message
    assert "with another spec" in action.message
    old_format = ApprovalRecord(FP_NEW, "alice", "2026-11-23T11:00Z").tags()
    held = decide(approved_spec, observe(**old_format))
    assert held.reason is Reason.AWAITING_APPROVAL
    assert "bound only the images: approve it again" in held.message
    # When it may go is no new release: an emergency window, a dependency, a resume.
    rescheduled = release(
        rollout={"approval": "manual"},
        preDeploy=[MIGRATE],
        deployWindows=[{"kind": "allow", "schedule": "0 2 * * *", "durationMinutes": 60}],
        dependsOn=["db"],
    )
    assert content(rescheduled) == content(approved_spec)
    # The same spec, reordered or with defaults spelled out, is the same approval.
    spelled = release(
        rollout={"approval": "manual", "alarms": []}, preDeploy=[MIGRATE], suspend=False
    )
    assert content(spelled) == content(approved_spec)


def test_a_container_that_stays_on_its_last_good_image_needs_no_proof() -> None:
    rel = build_release(
        containers={"api": NEW, "proxy": PROXY_OLD}, promotion={"from": ["api-staging"]}
    )
    proven_api_only = flow(proofs={"api-staging": UpstreamProof(frozenset({DIGEST_NEW}))})
    assert isinstance(decide(rel, observe(gathered=proven_api_only)), Deploy)
    moving_proxy = build_release(
        containers={"api": NEW, "proxy": PROXY_NEW}, promotion={"from": ["api-staging"]}
    )
    action = decide(moving_proxy, observe(gathered=proven_api_only))
    assert action.reason is Reason.PROMOTION_BLOCKED
    assert "proxy@" in action.message and "api@" not in action.message


def test_nothing_gathered_holds_what_needs_inputs_and_skips_the_preflight() -> None:
    """No AWS edge wired (``Observation.flow`` None): promotion and ordering cannot pass."""
    steady = build_deployment(TD_OLD)
    bare = Observation(
        service=service(steady, tags=memory_tags(last_good=TD_OLD.arn)), task_definitions=TDS
    )
    assert isinstance(decide(release(), bare), Deploy)
    held = decide(release(promotion={"from": ["api-staging"]}), bare)
    assert held.reason is Reason.PROMOTION_BLOCKED
    assert decide(release(dependsOn=["db"]), bare).reason is Reason.WAITING_FOR_DEPENDENCY


# --- never held ----------------------------------------------------------------------------

EVERY_POLICY: dict[str, Any] = {
    "promotion": {"from": ["api-staging"]},
    "dependsOn": ["db-schema"],
    "rollout": {"approval": "manual"},
    "deployWindows": [DENY_ALWAYS],
}
NOTHING_PASSES = flow(
    proofs={"api-staging": UpstreamProof()},
    dependencies={"db-schema": DependencyState(False, "Degraded")},
)


@pytest.mark.parametrize(
    ("running", "self_heal_reason"),
    [
        pytest.param(TD_NEW, Reason.DEPLOYING, id="spec-reverted-to-last-good"),
        pytest.param(TD_HAND, Reason.SELF_HEAL, id="self-heal-back-to-last-good"),
    ],
)
def test_a_return_to_the_proven_release_passes_all_but_the_preflight(
    running: TaskDefinition, self_heal_reason: Reason
) -> None:
    rel = build_release(containers={"api": OLD, "proxy": PROXY_OLD}, **EVERY_POLICY)
    action = decide(rel, observe(running, NOTHING_PASSES))
    assert outcome(action) == (Deploy, Phase.PROGRESSING, self_heal_reason), action.message
    missing = replace(NOTHING_PASSES, images={OLD: Lookup(Found.MISSING, "ImageNotFound")})
    assert decide(rel, observe(running, missing)).reason is Reason.IMAGE_NOT_FOUND


def test_a_new_release_after_drift_is_held_like_any() -> None:
    action = decide(release(**EVERY_POLICY), observe(TD_HAND, NOTHING_PASSES))
    assert action.reason is Reason.PROMOTION_BLOCKED


def test_rollbacks_are_never_held() -> None:
    rolling = build_deployment(TD_NEW, RolloutState.IN_PROGRESS, age=60, updated_ago=10, failed=3)
    old = build_deployment(TD_OLD, status=DeploymentStatus.ACTIVE)
    observed = Observation(
        service=service(rolling, old, tags=memory_tags(last_good=TD_OLD.arn)),
        task_definitions=TDS,
        flow=NOTHING_PASSES,
    )
    action = decide(release(**EVERY_POLICY), observed)
    assert isinstance(action, Rollback) and action.to == TD_OLD.arn


# --- what a pass gathers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "running", "self_heal", "wanted"),
    [
        pytest.param(release(api=OLD), TD_OLD, True, frozenset(), id="synced-gathers-nothing"),
        pytest.param(release(), TD_OLD, True, {Need.PREFLIGHT, Need.POLICY}, id="deploy"),
        pytest.param(
            release(promotion={"from": ["s"]}, dependsOn=["d"]),
            TD_OLD,
            True,
            set(Need),
            id="deploy-with-promotion-and-ordering",
        ),
        pytest.param(release(), TD_HAND, False, frozenset(), id="drift-reported-only"),
        pytest.param(
            build_release(containers={"api": OLD, "proxy": PROXY_OLD}, **EVERY_POLICY),
            TD_HAND,
            True,
            {Need.PREFLIGHT},
            id="self-heal-to-last-good",
        ),
    ],
)
def test_needs(rel: ServiceRelease, running: TaskDefinition, self_heal: bool, wanted: Any) -> None:
    observed = observe(running)
    options = Options(self_heal=self_heal)
    assert needs(rel, observed, classify(rel, observed, options), options) == frozenset(wanted)


# --- proofs --------------------------------------------------------------------------------


def test_a_bake_ends_in_a_proof_an_adoption_does_not() -> None:
    rel = release()
    baked = build_deployment(TD_NEW, RolloutState.COMPLETED, updated_ago=3000)
    memory = memory_tags(last_good=TD_OLD.arn, deploying=FP_NEW)
    observed = Observation(service=service(baked, tags=memory), task_definitions=TDS)
    action = decide(rel, observed)
    assert isinstance(action, RecordLastGood) and action.reason is Reason.BAKED
    assert proves(action.proof, "api-prod", TD_NEW.arn)
    first = Observation(service=service(build_deployment(TD_NEW)), task_definitions=TDS)
    adopted = decide(rel, first)
    assert isinstance(adopted, RecordLastGood) and adopted.reason is Reason.ADOPTED
    assert not adopted.proof


def test_a_proof_is_bound_to_its_revision_and_release() -> None:
    tags = proof_tags("api-staging", TD_NEW.arn)
    assert proves(tags, "api-staging", TD_NEW.arn)
    assert not proves(tags, "api-staging", TD_OLD.arn), "copied to another revision"
    assert not proves(tags, "api-prod", TD_NEW.arn), "another release"


def test_an_approval_fits_one_tag_value() -> None:
    who = "arn:aws:sts::111122223333:assumed-role/" + "R" * 64 + "/alice,ops@example.com" * 9
    tags = ApprovalRecord(FP_NEW, who, "2026-11-23T12:00:00Z").tags()
    assert len(tags[TAG_APPROVAL]) <= MAX_TAG_VALUE
    assert "," not in tags[TAG_APPROVAL]
    read = ApprovalRecord.read(tags)
    assert read is not None and read.fingerprint == FP_NEW and read.at == "2026-11-23T12:00:00Z"
    assert ApprovalRecord.read({TAG_APPROVAL: "garbage"}) is None


# --- deploy windows ------------------------------------------------------------------------

FRIDAY_1630 = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)
WORKDAYS = {
    "kind": "allow",
    "schedule": "0 9 * * MON-THU",
    "durationMinutes": 480,
    "timeZone": "Europe/Berlin",
}
CHRISTMAS = {
    "kind": "deny",
    "schedule": "0 0 24 12 *",
    "durationMinutes": 2880,
    "timeZone": "Europe/Berlin",
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "now", "allowed", "opens"),
    [
        pytest.param([], FRIDAY_1630, True, None, id="no-window-any-time"),
        pytest.param([WORKDAYS], at("2026-11-26T08:00"), True, None, id="thursday-9-berlin"),
        pytest.param([WORKDAYS], at("2026-11-26T15:59"), True, None, id="last-minute"),
        pytest.param(
            [WORKDAYS], at("2026-11-26T16:00"), False, at("2026-11-30T08:00"), id="closed-at-17"
        ),
        pytest.param(
            [WORKDAYS], FRIDAY_1630, False, at("2026-11-30T08:00"), id="friday-waits-for-monday"
        ),
        pytest.param(
            [WORKDAYS, CHRISTMAS],
            at("2026-12-23T23:30"),
            False,
            at("2026-12-28T08:00"),
            id="deny-wins-then-next-allow",
        ),
        pytest.param(
            [CHRISTMAS], at("2026-12-24T12:00"), False, at("2026-12-25T23:00"), id="deny-ends"
        ),
        pytest.param(
            [{**WORKDAYS, "schedule": "0 2 * * *", "durationMinutes": 60}],
            at("2026-03-29T00:30"),
            False,
            at("2026-03-29T01:00"),
            id="02-00-berlin-skipped-by-dst-opens-after-the-jump",
        ),
        pytest.param(
            [{**CHRISTMAS, "schedule": "30 1 * * *", "durationMinutes": 60}],
            at("2026-10-25T01:10"),  # 02:10 CET, the repeated hour's second pass
            True,
            None,
            id="fall-back-deny-lasts-its-minutes-not-its-wall-clock",
        ),
        pytest.param(
            [{**CHRISTMAS, "schedule": "0 2 * * *", "durationMinutes": 30}],
            at("2026-10-25T01:10"),  # croniter fires at both 02:00s of the night
            False,
            at("2026-10-25T01:30"),
            id="fall-back-repeated-02-00-denies-again-until-its-own-end",
        ),
    ],
)
def test_windows(given: list[dict[str, Any]], now: datetime, allowed: bool, opens: Any) -> None:
    state = windows.evaluate([DeployWindow.model_validate(w) for w in given], now)
    assert (state.allowed, state.opens) == (allowed, opens), state.why


DST_NIGHTS = [
    at(night) + timedelta(minutes=5 * i)
    for night in ("2026-03-28T22:00", "2026-10-24T22:00")
    for i in range(72)
]


@pytest.mark.parametrize(
    "window",
    [
        pytest.param({**CHRISTMAS, "schedule": "0 2 * * *", "durationMinutes": 30}, id="deny-02"),
        pytest.param(
            {**CHRISTMAS, "schedule": "30 1 * * *", "durationMinutes": 60}, id="deny-0130"
        ),
        pytest.param({**WORKDAYS, "schedule": "0 2 * * *", "durationMinutes": 30}, id="allow-02"),
        pytest.param({**WORKDAYS, "schedule": "*/20 * * * *", "durationMinutes": 5}, id="allow-20"),
    ],
)
def test_a_window_never_ends_or_opens_in_the_past_across_dst_changes(
    window: dict[str, Any],
) -> None:
    """Every 5 minutes through Berlin's DST nights (02:00-03:00 skipped, then repeated):
    a window said open is open until a later instant, a deploy held is told a later
    opening. Compared as wall clocks, the repeated hour read "open until 00:30Z" at
    01:10Z, and "the next window opens at 2026-10-25T00:30Z (in 0m)"."""
    parsed = DeployWindow.model_validate(window)
    for now in DST_NIGHTS:
        end = windows.open_until(parsed, now)
        assert end is None or end > now, (now, end)
        state = windows.evaluate([parsed], now)
        assert state.opens is None or state.opens > now, (now, state)


def test_a_hostile_set_of_windows_costs_a_bounded_number_of_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sixty one-minute deny windows, one at each minute: never allowed. Looking for the
    next opening read them about 240,000 times (26 s of CPU per pass on this machine, a
    worker held while other releases wait for their rollbacks); now a bounded number."""
    reads = 0
    real_open_until, real_next_start = windows.open_until, windows.next_start

    def open_until(window: DeployWindow, t: datetime) -> datetime | None:
        nonlocal reads
        reads += 1
        return real_open_until(window, t)

    def next_start(window: DeployWindow, t: datetime) -> datetime:
        nonlocal reads
        reads += 1
        return real_next_start(window, t)

    monkeypatch.setattr(windows, "open_until", open_until)
    monkeypatch.setattr(windows, "next_start", next_start)
    every_minute = [
        DeployWindow.model_validate(
            {"kind": "deny", "schedule": f"{m} * * * *", "durationMinutes": 1}
        )
        for m in range(60)
    ]
    state = windows.evaluate(every_minute, FRIDAY_1630)
    assert (state.allowed, state.opens) == (False, None)
    assert reads <= 3000, reads
    # Overlapping denies (nights in Berlin, then in New York) are read to the last one's
    # end, with the opening between them still found.
    reads = 0
    nights = [
        DeployWindow.model_validate(
            {**CHRISTMAS, "schedule": "0 18 * * *", "durationMinutes": 900, "timeZone": zone}
        )
        for zone in ("Europe/Berlin", "America/New_York")
    ]
    state = windows.evaluate(nights, at("2026-11-27T18:00"))
    assert state.opens == at("2026-11-28T14:00"), state
    assert reads <= 30, reads


def test_status_says_when_the_next_window_opens() -> None:
    rel = release(deployWindows=[WORKDAYS])
    action = decide(rel, observe(), now=FRIDAY_1630)
    assert action.reason is Reason.OUTSIDE_DEPLOY_WINDOW
    assert "next window opens at 2026-11-30T08:00Z (in 2d 15h 30m)" in action.message
    # ... and is looked at again then, not at a resync minutes after (or never, for a
    # window shorter than the resync interval).
    assert action.requeue_after == (at("2026-11-30T08:00") - FRIDAY_1630).total_seconds()
    assert isinstance(decide(rel, observe(), now=at("2026-11-30T08:00")), Deploy)


def test_windows_read_aws_time_not_the_hosts() -> None:
    """``now`` is the decision's (the response's Date): a skewed host changes nothing."""
    rel = release(deployWindows=[WORKDAYS])
    monday = at("2026-11-30T09:00")
    assert isinstance(decide(rel, observe(), now=monday), Deploy)
    assert decide(rel, observe(), now=monday + timedelta(hours=8)).reason is (
        Reason.OUTSIDE_DEPLOY_WINDOW
    )


def test_a_deploy_clones_what_the_preflight_checked() -> None:
    """The pre-flight checks the execution role of the very revision ``_deploy`` clones."""
    hand_role = "arn:aws:iam::111122223333:role/hand"
    hand = replace(TD_HAND, execution_role=hand_role)
    tds = {**TDS, hand.arn: hand}
    steady = build_deployment(hand)
    observed = Observation(
        service=service(steady, tags=memory_tags(last_good=TD_OLD.arn)),
        task_definitions=tds,
        flow=flow(roles={ROLE: FOUND, hand_role: Lookup(Found.MISSING, "gone")}),
    )
    action = decide(release(), observed)
    assert isinstance(action, Deploy) and action.base == TD_OLD.arn, action.message


# --- a window closing mid-rollout ------------------------------------------------------------

NEXT = image("v3")
TD_NEXT = task_definition("api", 4, {"api": NEXT, "proxy": PROXY_OLD}, {TAG_RELEASE: "api-prod"})
HOLDING = replace(NOTHING_PASSES, images={**NOTHING_PASSES.images, NEXT: FOUND})


def rolling(td: TaskDefinition, failed: int = 0, **spec: Any) -> Observation:
    """``td`` rolling out over TD_OLD (last-good), with every release-flow check holding."""
    primary = build_deployment(td, RolloutState.IN_PROGRESS, age=60, updated_ago=10, failed=failed)
    old = build_deployment(TD_OLD, status=DeploymentStatus.ACTIVE)
    return Observation(
        service=service(primary, old, tags=memory_tags(last_good=TD_OLD.arn, deploying=FP_NEW)),
        task_definitions={**TDS, TD_NEXT.arn: TD_NEXT},
        flow=HOLDING,
    )


@pytest.mark.parametrize(
    ("api", "running", "failed", "expected"),
    [
        pytest.param(NEW, TD_NEW, 0, Reason.ROLLOUT_IN_PROGRESS, id="started-inside-finishes"),
        pytest.param(NEW, TD_NEW, 3, Reason.ROLLING_BACK, id="failing-is-rolled-back"),
        pytest.param(OLD, TD_NEW, 0, Reason.REVERTING, id="spec-reverted-mid-rollout-goes-back"),
        pytest.param(NEXT, TD_NEW, 0, Reason.ROLLOUT_IN_PROGRESS, id="superseded-finishes-first"),
        pytest.param(NEXT, TD_OLD, 0, Reason.PROMOTION_BLOCKED, id="the-next-release-is-held"),
    ],
)
def test_a_window_closing_mid_rollout_holds_only_what_has_not_started(
    api: str, running: TaskDefinition, failed: int, expected: Reason
) -> None:
    """A deny window (and every other check) holding from now on: the rollout ECS
    runs is judged to its end, rolled back when it fails, and a revert of the spec
    goes back at once; only a release not yet started waits (Argo CD's windows too
    gate the start of a sync, not one in progress)."""
    rel = build_release(containers={"api": api, "proxy": PROXY_OLD}, **EVERY_POLICY)
    observed = observe(TD_OLD, HOLDING) if running is TD_OLD else rolling(running, failed)
    action = decide(rel, observed)
    assert action.reason is expected, action.message
    if expected is Reason.ROLLING_BACK:
        assert isinstance(action, Rollback) and action.to == TD_OLD.arn
