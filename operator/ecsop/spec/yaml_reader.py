"""Reading spec YAML safely, keeping where every field came from.

``yaml.safe_load_all`` alone loses line numbers and silently keeps the last of
two equal keys; ``ecsop.spec.loader`` needs both the documents and, per document,
the line of each field path (for ``file:line: field: message``) and its
duplicate keys.

Aliases are counted as what they become. PyYAML builds ``*name`` as the same
object as its anchor, so a 700-byte "billion laughs" file is a small graph but,
once anything walks it as a tree (validation, an error message quoting the
value), billions of elements. While composing, every node counts once and every
alias counts the whole subtree it repeats (sizes memoised per node, so counting
is linear in the file); a document past ``MAX_YAML_NODES`` is refused at the
alias that crosses the bound, with its line, before anything is constructed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import yaml

from ecsop.spec import errors as spec_errors
from ecsop.spec.errors import Path_
from ecsop.spec.quoting import quote

MAX_YAML_NODES = 100_000
"""Refuse documents with more YAML nodes than this, aliases expanded (a spec has < 1000)."""


class ExpansionError(yaml.MarkedYAMLError):
    """A document too large once its aliases are expanded, or an alias inside its own anchor."""


def documents(text: str) -> Iterator[tuple[yaml.Node, Any]]:
    """``yaml.safe_load_all``, keeping each document's node tree for line numbers."""
    loader = _BoundedLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            yield node, loader.construct_document(node)
    finally:
        loader.dispose()


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` counting each document's nodes as they will be expanded."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._expanded = 0
        self._sizes: dict[int, int] = {}
        """id(node) -> nodes in its subtree, aliases expanded (nodes of this document only)."""
        self._open: set[str] = set()
        """Anchors whose node is still being composed: an alias to one would be a cycle."""

    def compose_document(self) -> yaml.Node | None:
        self._expanded, self._sizes, self._open = 0, {}, set()
        node = super().compose_document()
        self._sizes = {}
        return node

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        mark: Any = event.start_mark
        anchor: str | None = event.anchor
        if isinstance(event, yaml.AliasEvent):
            if anchor in self._open:
                raise ExpansionError(
                    problem=f"alias *{anchor} is used inside its own anchor &{anchor} "
                    "(a recursive structure); a release spec never needs one",
                    problem_mark=mark,
                )
            node = super().compose_node(parent, index)
            if node is not None:
                self._count(self._size(node), f"alias *{anchor}", mark)
            return node
        self._count(1, "document", mark)
        if anchor is not None:
            self._open.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            if anchor is not None:
                self._open.discard(anchor)
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """PyYAML's constructors raise ``ValueError`` for ``2020-13-45`` or ``!!int zz``."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                problem=f"cannot read value: {exc}", problem_mark=node.start_mark
            ) from None

    def _count(self, nodes: int, what: str, mark: Any) -> None:
        self._expanded += nodes
        if self._expanded > MAX_YAML_NODES:
            raise ExpansionError(
                problem=f"{what} takes the document past {MAX_YAML_NODES} YAML nodes with "
                "aliases expanded; refused (aliases that multiply are a 'billion laughs' attack)",
                problem_mark=mark,
            )

    def _size(self, root: yaml.Node) -> int:
        """Nodes in ``root``'s tree, aliases expanded; linear thanks to the memo."""
        sizes = self._sizes
        stack: list[tuple[yaml.Node, bool]] = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if id(node) in sizes:
                continue
            below = [n for pair in children(node) for n in pair if n is not None]
            if ready:
                sizes[id(node)] = 1 + sum(sizes[id(n)] for n in below)
            else:
                stack.append((node, True))
                stack.extend((n, False) for n in below if id(n) not in sizes)
        return sizes[id(root)]


def children(node: yaml.Node) -> Iterable[tuple[yaml.Node, yaml.Node | None]]:
    """A mapping's (key, value) pairs, a sequence's (item, None), a scalar's nothing."""
    if isinstance(node, yaml.MappingNode):
        pairs: list[tuple[yaml.Node, yaml.Node]] = node.value
        return pairs
    if isinstance(node, yaml.SequenceNode):
        items: list[yaml.Node] = node.value
        return ((item, None) for item in items)
    return ()


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
                    msg = f"duplicate key {quote(name)} (first at line {first[name]})"
                    duplicates.append((line, spec_errors.dotted((*path, name)), msg))
                first.setdefault(name, line)
                lines.setdefault((*path, name), line)
                stack.append(((*path, name), value))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines.setdefault((*path, index), item.start_mark.line + 1)
                stack.append(((*path, index), item))
    return lines, sorted(duplicates)
