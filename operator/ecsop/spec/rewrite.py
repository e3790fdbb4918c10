"""Editing a spec file in place: only the image values, every comment and space kept.

``ecsop promote`` changes a release's images and nothing else: the file is a
reviewed artefact (the pull request a human reads), so its comments, key
order, quoting and layout must survive. PyYAML's node marks give the exact
character span of each image scalar; only those spans are replaced, in the
scalar's own quoting style. No YAML is re-emitted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import yaml

from ecsop.spec import yaml_reader


class RewriteError(ValueError):
    """The file does not hold the release, or its images are not plain scalars."""


def replace_images(text: str, release: str, images: Mapping[str, str]) -> str:
    """``text`` with ``spec.containers.<name>`` of document ``release`` set to ``images``."""
    spans: list[tuple[int, int, str]] = []
    for node, document in yaml_reader.documents(text):
        if (
            not isinstance(document, dict)
            or (document.get("metadata") or {}).get("name") != release
        ):
            continue
        containers = _child(_child(node, "spec"), "containers")
        if not isinstance(containers, yaml.MappingNode):
            raise RewriteError("spec.containers is not a mapping")
        for key, value in containers.value:
            name = str(key.value)
            if name not in images:
                continue
            if not isinstance(value, yaml.ScalarNode) or value.style not in (None, "'", '"'):
                raise RewriteError(f"spec.containers.{name} is not a one-line string")
            start, end = value.start_mark.index, value.end_mark.index
            if "\n" in text[start:end]:
                raise RewriteError(f"spec.containers.{name} spans several lines")
            spans.append((start, end, _scalar(images[name], value.style)))
        missing = set(images) - {str(k.value) for k, _ in containers.value}
        if missing:
            raise RewriteError(f"spec.containers has no {', '.join(sorted(missing))}")
        break
    else:
        raise RewriteError(f"no ServiceRelease named {release!r} in the file")
    for start, end, replacement in sorted(spans, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        raise RewriteError(f"no mapping holds {key!r}")
    for name, value in node.value:
        if name.value == key:
            return value  # type: ignore[no-any-return]
    raise RewriteError(f"no {key!r} in the release")


def _scalar(value: str, style: str | None) -> str:
    if style == '"':
        return json.dumps(value)
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    return value
