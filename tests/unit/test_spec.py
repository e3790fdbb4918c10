"""The release spec model: defaults, digest pinning, fingerprint, schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from ecsop.spec import loader
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


# --- HTTP checks and their credentials -------------------------------------------------------


def with_check(**fields: Any) -> dict[str, Any]:
    return release(rollout={"httpChecks": [{"url": "https://api.example.com/smoke", **fields}]})


def errors_of(document: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        spec.ServiceRelease.model_validate(document)
    return [str(error["msg"]) for error in caught.value.errors()]


def test_credentials_in_a_check_url_are_refused_saying_what_to_do_instead() -> None:
    (message,) = errors_of(with_check(url="https://bob:hunter2@api.example.com/smoke"))
    assert "must not carry credentials" in message and "basicAuth" in message
    assert "valueFrom" in message and "hunter2" not in message


def test_headers_and_basic_auth_name_where_the_daemon_reads_secrets() -> None:
    loaded = spec.ServiceRelease.model_validate(
        with_check(
            headers=[
                {"name": "X-Api-Key", "valueFrom": {"env": "ECSOP_CHECK_API_KEY"}},
                {"name": "X-Tenant", "valueFrom": {"file": "tenant"}},
            ],
            basicAuth={
                "usernameFrom": {"env": "ECSOP_CHECK_USER"},
                "passwordFrom": {"file": "smoke-password"},
            },
        )
    )
    (check,) = loaded.spec.rollout.http_checks
    assert [str(h.value_from) for h in check.headers] == [
        "environment variable ECSOP_CHECK_API_KEY",
        "secret file tenant",
    ]
    assert check.basic_auth is not None
    assert str(check.basic_auth.password_from) == "secret file smoke-password"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        pytest.param(
            {"name": "Authorization", "value": "Bearer abc123"},
            "a header has no literal value: never write a secret in the spec",
            id="literal-value",
        ),
        pytest.param(
            {"name": "Authorization", "valueFrom": {"env": "AWS_SECRET_ACCESS_KEY"}},
            "checks read only variables named ECSOP_CHECK_*",
            id="daemon-credentials",
        ),
        pytest.param(
            {"name": "Authorization", "valueFrom": {"file": "../../proc/self/environ"}},
            "a file name in the daemon's check-secrets directory",
            id="file-outside-the-directory",
        ),
        pytest.param(
            {"name": "Authorization", "valueFrom": {}},
            "give exactly one of env or file",
            id="no-source",
        ),
        pytest.param(
            {"name": "X", "valueFrom": {"env": "ECSOP_CHECK_A", "file": "a"}},
            "give exactly one of env or file",
            id="two-sources",
        ),
        pytest.param(
            {"name": "Bad Name", "valueFrom": {"env": "ECSOP_CHECK_A"}},
            "is not an HTTP header name",
            id="header-name",
        ),
        pytest.param(
            {"name": "Host", "valueFrom": {"env": "ECSOP_CHECK_A"}},
            "Host is set by the HTTP client",
            id="framing-header",
        ),
    ],
)
def test_bad_headers_are_refused(header: dict[str, Any], message: str) -> None:
    messages = errors_of(with_check(headers=[header]))
    assert any(message in m for m in messages), messages
    assert not any("abc123" in m for m in messages)


def test_headers_do_not_repeat_and_basic_auth_owns_authorization() -> None:
    header = {"name": "Authorization", "valueFrom": {"env": "ECSOP_CHECK_A"}}
    assert "must not repeat a name" in errors_of(
        with_check(headers=[header, {**header, "name": "authorization"}])
    )[0]
    basic = {"usernameFrom": {"env": "ECSOP_CHECK_U"}, "passwordFrom": {"env": "ECSOP_CHECK_P"}}
    assert "do not give both" in errors_of(with_check(headers=[header], basicAuth=basic))[0]


def test_a_refused_check_url_is_shown_redacted(tmp_path: Path) -> None:
    document = with_check(url="ftp://bob:hunter2@h.example/?token=abc")
    (tmp_path / "api.yaml").write_text(yaml.safe_dump(document))
    (error,) = loader.load([tmp_path]).errors
    assert "hunter2" not in str(error) and "abc" not in str(error)
    assert "'ftp://REDACTED@h.example/?token=REDACTED' is not valid" in error.message


def test_json_schema_documents_check_credentials() -> None:
    check = spec.json_schema()["$defs"]["HttpCheck"]["properties"]
    assert {"headers", "basicAuth"} <= set(check)
