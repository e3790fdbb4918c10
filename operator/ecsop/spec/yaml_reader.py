"""Reading spec YAML safely, keeping where every field came from.

``yaml.safe_load_all`` alone loses line numbers and silently keeps the last of
two equal keys; ``ecsop.source`` needs both the documents and, per document, the
line of each field path (for ``file:line: field: message``) and its duplicate
keys. Documents are refused past ``MAX_YAML_NODES`` nodes, counting each alias
target once, so a billion-laughs file costs a few microseconds, not the daemon.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import yaml

from ecsop.spec import errors as spec_errors
from ecsop.spec.errors import Path_

MAX_YAML_NODES = 100_000
"""Refuse documents with more YAML nodes than this (alias bombs, runaway generators)."""


def documents(text: str) -> Iterator[tuple[yaml.Node, Any]]:
    """``yaml.safe_load_all``, keeping each document's node tree for line numbers."""
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if node_count(node) > MAX_YAML_NODES:
                raise yaml.YAMLError(f"document has more than {MAX_YAML_NODES} YAML nodes")
            yield node, loader.construct_document(node)
    finally:
        loader.dispose()


def children(node: yaml.Node) -> Iterable[tuple[yaml.Node, yaml.Node | None]]:
    """A mapping's (key, value) pairs, a sequence's (item, None), a scalar's nothing."""
    if isinstance(node, yaml.MappingNode):
        pairs: list[tuple[yaml.Node, yaml.Node]] = node.value
        return pairs
    if isinstance(node, yaml.SequenceNode):
        items: list[yaml.Node] = node.value
        return ((item, None) for item in items)
    return ()


def node_count(root: yaml.Node) -> int:
    """Count nodes, visiting each alias target once (so a billion-laughs graph is cheap)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for first, second in children(node):
            stack.append(first)
            if second is not None:
                stack.append(second)
    return len(seen)


def positions(root: yaml.Node) -> tuple[dict[Path_, int], list[tuple[int, str, str]]]:
    """One walk of the node tree: each field path's 1-based line, and duplicate keys.

    Paths look like ``("spec", "containers", "api")``. Duplicate keys are
    reported because YAML silently keeps the last of two equal keys, which a
    spec author never means.
    """
    lines: dict[Path_, int] = {(): root.start_mark.line + 1}
    duplicates: list[tuple[int, str, str]] = []
    seen: set[int] = set()
    stack: list[tuple[Path_, yaml.Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value)
                line = key.start_mark.line + 1
                if name in first:
                    msg = f"duplicate key {name!r} (first at line {first[name]})"
                    duplicates.append((line, spec_errors.dotted((*path, name)), msg))
                first.setdefault(name, line)
                lines.setdefault((*path, name), line)
                stack.append(((*path, name), value))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines.setdefault((*path, index), item.start_mark.line + 1)
                stack.append(((*path, index), item))
    return lines, sorted(duplicates)
