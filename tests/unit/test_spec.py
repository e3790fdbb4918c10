"""The release spec model: defaults, digest pinning, fingerprint, schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from ecsop.spec import model as spec

DIGEST = "a" * 64
IMAGE = f"111122223333.dkr.ecr.us-east-1.amazonaws.com/api@sha256:{DIGEST}"


def release(**spec_fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"cluster": "prod", "service": "api", "containers": {"api": IMAGE}}
    body.update(spec_fields)
    return {
        "apiVersion": "ecsop.dev/v1",
        "kind": "ServiceRelease",
        "metadata": {"name": "api-prod"},
        "spec": body,
    }


def test_defaults_are_documented_values() -> None:
    loaded = spec.ServiceRelease.model_validate(release())
    rollout = loaded.spec.rollout
    assert (rollout.timeout_seconds, rollout.bake_seconds, rollout.max_failed_tasks) == (900, 60, 1)
    assert rollout.alarms == [] and rollout.target_health is None
    assert loaded.spec.rollback.automatic is True
    assert loaded.spec.suspend is False and loaded.spec.region is None


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(f"repo/api@sha256:{DIGEST}", id="digest"),
        pytest.param(f"repo/api:1.2@sha256:{DIGEST}", id="tag-and-digest"),
        pytest.param(f"registry.local:5000/team/api@sha256:{DIGEST}", id="registry-port"),
    ],
)
def test_pinned_images_are_accepted(image: str) -> None:
    spec.ServiceRelease.model_validate(release(containers={"api": image}))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        pytest.param("repo/api:latest", "not pinned by digest", id="mutable-tag"),
        pytest.param("repo/api", "not pinned by digest", id="no-tag"),
        pytest.param(f"repo/api@sha256:{DIGEST[:-1]}", "64 lowercase hex", id="short-digest"),
        pytest.param(f"repo/api@sha256:{DIGEST.upper()}", "64 lowercase hex", id="uppercase"),
        pytest.param(f"repo/api@sha512:{DIGEST}", "only sha256", id="sha512"),
        pytest.param("repo api@sha256:x", "not an image reference", id="space"),
        pytest.param("", "not an image reference", id="empty"),
    ],
)
def test_unpinned_images_are_rejected(image: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        spec.ServiceRelease.model_validate(release(containers={"api": image}))
    (error,) = caught.value.errors()
    assert error["loc"] == ("spec", "containers", "api")
    assert message in error["msg"]


def test_mutable_tags_allowed_only_by_context() -> None:
    doc = release(containers={"api": "repo/api:latest"})
    loaded = spec.ServiceRelease.model_validate(doc, context={spec.ALLOW_MUTABLE_TAGS: True})
    assert loaded.spec.containers == {"api": "repo/api:latest"}


def test_fingerprint_ignores_key_order() -> None:
    first = spec.fingerprint({"api": IMAGE, "proxy": f"nginx@sha256:{'b' * 64}"})
    second = spec.fingerprint({"proxy": f"nginx@sha256:{'b' * 64}", "api": IMAGE})
    assert first == second
    assert len(first) == 16


def test_fingerprint_changes_when_an_image_changes() -> None:
    before = spec.fingerprint({"api": IMAGE})
    assert spec.fingerprint({"api": IMAGE.replace("a" * 64, "c" * 64)}) != before
    assert spec.fingerprint({"worker": IMAGE}) != before


def test_fingerprint_does_not_depend_on_release_name_or_rollout() -> None:
    one = spec.ServiceRelease.model_validate(release())
    other = release(rollout={"bakeSeconds": 5})
    other["metadata"]["name"] = "api-staging"
    assert one.fingerprint() == spec.ServiceRelease.model_validate(other).fingerprint()


def test_models_are_frozen() -> None:
    loaded = spec.ServiceRelease.model_validate(release())
    with pytest.raises(ValidationError):
        loaded.spec.suspend = True  # type: ignore[misc]


def test_json_schema_matches_yaml_field_names() -> None:
    schema = spec.json_schema()
    json.dumps(schema)
    assert schema["required"] == ["apiVersion", "kind", "metadata", "spec"]
    rollout = schema["$defs"]["Rollout"]["properties"]
    assert {"timeoutSeconds", "bakeSeconds", "maxFailedTasks", "alarms"} <= set(rollout)
    assert schema["$defs"]["Rollout"]["additionalProperties"] is False
    assert (
        "@sha256"
        in schema["$defs"]["ReleaseSpec"]["properties"]["containers"]["additionalProperties"][
            "pattern"
        ]
    )
