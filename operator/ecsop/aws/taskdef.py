"""Cloning a task definition: DescribeTaskDefinition output in, RegisterTaskDefinition input out.

Pure functions, no I/O; ``ecsop.ecs`` calls them between the two API calls.

The clone must keep everything a human put in the task definition (secrets,
volumes, log configuration, tags, fields AWS adds next year) and change only the
images ecsop manages. So the fields to keep are read from botocore's service
model for RegisterTaskDefinition, not from a hand-written list: a newer botocore
brings new fields along, and read-only members of the describe output
(``taskDefinitionArn``, ``revision``, ``status``, ``requiresAttributes``,
``compatibilities``, ``registeredAt``...) fall away because the input shape does
not have them. The same filter applies at every depth, so a nested member the
input does not accept (an older API's leftover, a test double's extra) never
makes RegisterTaskDefinition fail.

Error messages name containers and tag keys, never values: container
definitions hold environment variables and secret references.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import botocore.session

from ecsop.decision.memory import (
    MAX_TAG_KEY,
    MAX_TAG_VALUE,
    MAX_TAGS,
    RESERVED_TAG_PREFIX,
    TAG_PREFIX,
)


@functools.cache
def _register_input_shape() -> Any:
    """The botocore input shape of ECS RegisterTaskDefinition (loaded once)."""
    model = botocore.session.get_session().get_service_model("ecs")
    return model.operation_model("RegisterTaskDefinition").input_shape


def accepted(value: Mapping[str, Any], operation: str, member: str) -> dict[str, Any]:
    """``value`` with only what ECS ``operation`` accepts for its input ``member``.

    The service's ``deploymentConfiguration`` as DescribeServices reports it,
    sent back with UpdateService, must not carry a member UpdateService does not
    take (a newer botocore's output, a test double's extra).
    """
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model(operation).input_shape.members[member]
    filtered: dict[str, Any] = _filter(copy.deepcopy(dict(value)), shape)
    return filtered


def accepted_fields() -> frozenset[str]:
    """Top-level members RegisterTaskDefinition accepts, per the installed botocore."""
    return frozenset(_register_input_shape().members)


def images_of(described: Mapping[str, Any]) -> dict[str, str]:
    """Container name -> image, for every container of a described task definition."""
    return {
        str(container["name"]): str(container.get("image", ""))
        for container in described.get("containerDefinitions") or ()
    }


def tags_of(tags: list[dict[str, Any]] | None) -> dict[str, str]:
    """ECS's ``[{"key": k, "value": v}]`` tag list as a dict."""
    return {str(tag["key"]): str(tag.get("value", "")) for tag in tags or ()}


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """A dict of tags in ECS's ``[{"key": k, "value": v}]`` form, sorted by key."""
    return [{"key": key, "value": tags[key]} for key in sorted(tags)]


def content_hash(described: Mapping[str, Any], tags: list[dict[str, Any]] | None) -> str:
    """A hash of everything RegisterTaskDefinition takes to make ``described`` again.

    Every accepted field at any depth (images included), and every tag but
    ecsop's own and AWS's: two revisions with the same hash are
    interchangeable. This is what decides whether a revision may be reused for
    a deploy (``docs/design.md``, "Reusing a revision"): production must never
    run a staging revision that merely has the same images, and a revert must
    not undo a configuration change made since.
    """
    request = _filter(copy.deepcopy(dict(described)), _register_input_shape())
    request.pop("tags", None)
    kept = {
        key: value
        for key, value in tags_of(tags).items()
        if not key.startswith(TAG_PREFIX) and not key.startswith(RESERVED_TAG_PREFIX)
    }
    canonical = json.dumps(
        {"definition": request, "tags": kept}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def with_images(described: Mapping[str, Any], images: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``described`` whose named containers run ``images`` (names must exist)."""
    present = images_of(described)
    unknown = sorted(set(images) - set(present))
    if unknown:
        raise ValueError(
            f"task definition {described.get('family', '?')!r} has no container named "
            f"{', '.join(map(repr, unknown))}; its containers are "
            f"{', '.join(map(repr, sorted(present))) or 'none'}"
        )
    copied = copy.deepcopy(dict(described))
    for container in copied.get("containerDefinitions") or ():
        if container.get("name") in images:
            container["image"] = images[container["name"]]
    return copied


def register_request_from(
    described: Mapping[str, Any],
    tags: list[dict[str, Any]] | None,
    images: Mapping[str, str],
    extra_tags: Mapping[str, str],
) -> dict[str, Any]:
    """RegisterTaskDefinition kwargs that clone ``described`` with new images and tags.

    ``described`` is the ``taskDefinition`` member of a DescribeTaskDefinition
    response, ``tags`` that response's ``tags`` member. ``images`` maps container
    names to their new image; every name must exist. ``extra_tags`` (ecsop's own)
    are added to the existing tags. The base's own ``ecsop:`` tags are dropped
    first: they describe the base revision (its commit, its fingerprint), and a
    clone registered outside a git work tree must not claim the base's commit.
    ``aws:`` tags are dropped too: AWS rejects them on register, and it puts back
    its own where they apply.
    """
    request: dict[str, Any] = _filter(with_images(described, images), _register_input_shape())
    request.pop("tags", None)
    inherited = {k: v for k, v in tags_of(tags).items() if not k.startswith(TAG_PREFIX)}
    merged = merge_tags(inherited, extra_tags)
    if merged:
        request["tags"] = tag_list(merged)
    return request


def merge_tags(existing: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """Existing user tags with ``extra`` on top, checked against AWS's tag limits."""
    kept = {k: v for k, v in existing.items() if not k.startswith(RESERVED_TAG_PREFIX)}
    merged = {**kept, **extra}
    if len(merged) > MAX_TAGS:
        raise ValueError(
            f"the clone would carry {len(merged)} tags, over AWS's limit of {MAX_TAGS} "
            f"({len(kept)} existing, {len(extra)} set by ecsop); remove some tags "
            "from the task definition"
        )
    for key, value in merged.items():
        if key.startswith(RESERVED_TAG_PREFIX):
            raise ValueError(f"tag key {key!r} uses the prefix reserved by AWS")
        if not key or len(key) > MAX_TAG_KEY:
            raise ValueError(f"tag key {key[:MAX_TAG_KEY]!r} must be 1-{MAX_TAG_KEY} characters")
        if len(value) > MAX_TAG_VALUE:
            raise ValueError(f"value of tag {key!r} is over {MAX_TAG_VALUE} characters")
    return merged


def _filter(value: Any, shape: Any) -> Any:
    """``value`` with every member ``shape`` does not accept removed, at any depth.

    ``None`` members are dropped too: botocore rejects ``None`` for any type.
    """
    type_name = shape.type_name
    if type_name == "structure" and isinstance(value, dict):
        return {
            name: _filter(member, shape.members[name])
            for name, member in value.items()
            if name in shape.members and member is not None
        }
    if type_name == "list" and isinstance(value, list):
        return [_filter(item, shape.member) for item in value if item is not None]
    if type_name == "map" and isinstance(value, dict):
        return {key: _filter(item, shape.value) for key, item in value.items()}
    return value
