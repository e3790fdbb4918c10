"""The people's policies: ``ecsop approve`` and ``ecsop promote`` need exactly what they allow.

Both commands run in this process against the sandbox, their calls recorded
from botocore (as in ``test_iam_policy``), and are compared with
``ecsop-approver-policy.json`` and ``ecsop-promoter-policy.json``: nothing
they call is missing, nothing allowed goes unused. The approver may tag only
``ecsop:approval``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ecsop.cli import app as cli
from ecsop.decision.memory import TAG_APPROVAL, ServiceMemory, proof_tags

from . import policy
from .test_iam_policy import IAM, SANDBOX_VALUES, recording_calls

APPROVER_POLICY = IAM / "ecsop-approver-policy.json"
PROMOTER_POLICY = IAM / "ecsop-promoter-policy.json"


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_approve_and_promote_need_exactly_their_policies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from e2e.conftest import GOOD_V1, GOOD_V2, Sandbox, release_doc, scenario

    box = Sandbox(tmp_path, scenario())
    try:
        for name, value in box.aws_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        specs = tmp_path / "specs"
        specs.mkdir()
        upstream = release_doc("shop", "shop", GOOD_V1)
        downstream = release_doc("next", "shop-breaker", GOOD_V1)
        downstream["spec"]["promotion"] = {"from": ["shop"]}
        downstream["spec"]["rollout"]["approval"] = "manual"
        (specs / "flow.yaml").write_text(yaml.safe_dump_all([upstream, downstream]))
        # shop ran v2 to last-good: the memory and the proof ecsop would have written.
        shop = box.service("shop")
        td = box.ecs.register_task_definition(
            family="shop", containerDefinitions=[{"name": "app", "image": GOOD_V2, "memory": 64}]
        )["taskDefinition"]["taskDefinitionArn"]
        memory = ServiceMemory(release="shop").proven(
            shop["serviceArn"], "shop", td, fingerprint=None
        )
        box.ecs.tag_resource(
            resourceArn=shop["serviceArn"],
            tags=[{"key": k, "value": v} for k, v in memory.tags().items()],
        )
        url = "http://127.0.0.1:1"  # no daemon: approve says so and carries on
        with recording_calls() as approve_calls:
            assert cli.main(["approve", "next", "--specs", str(specs), "--url", url]) == 0
        assert TAG_APPROVAL in box.tags("shop-breaker")
        args = ["promote", "shop", "next", "--specs", str(specs)]
        with recording_calls() as refused_calls:
            assert cli.main(args) == 1, "refused: v2 is not proven yet"
        box.ecs.tag_resource(
            resourceArn=td,
            tags=[{"key": k, "value": v} for k, v in proof_tags("shop", td).items()],
        )
        with recording_calls() as promoted_calls:
            assert cli.main(args) == 0
        promote_calls = refused_calls | promoted_calls
        assert GOOD_V2 in (specs / "flow.yaml").read_text()
        capsys.readouterr()
        account = shop["serviceArn"].split(":")[4]
    finally:
        box.stop()

    values = {**SANDBOX_VALUES, "ACCOUNT_ID": account}
    for path, calls in ((APPROVER_POLICY, approve_calls), (PROMOTER_POLICY, promote_calls)):
        document = policy.render(policy.load(path), values)
        result = policy.compare(document, policy.required_actions(calls), {})
        assert not result.missing, f"{path.name} lacks {result.missing}"
        assert not result.unused, f"{path.name} allows what is never called: {result.unused}"


def test_the_approver_may_tag_only_the_approval() -> None:
    document = policy.render(policy.load(APPROVER_POLICY), SANDBOX_VALUES)
    (tagging,) = [s for s in policy.statements(document) if "ecs:TagResource" in s.actions]
    assert tagging.conditions["ForAllValues:StringEquals"] == {"aws:TagKeys": [TAG_APPROVAL]}
    assert tagging.conditions["Null"] == {"aws:TagKeys": "false"}
