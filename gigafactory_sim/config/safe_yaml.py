"""YAML reading that no input can turn against the machine, and that never guesses.

:func:`load_checked` parses like :func:`yaml.safe_load` but refuses, with the line of the offending node:

- a mapping that repeats a key (plain YAML keeps the later value silently);
- nesting deeper than :data:`MAX_DEPTH` (the composer recurses; deep input would exhaust the stack);
- a document whose aliases expand to more than :data:`MAX_NODES` nodes (a "billion laughs" bomb), or an
  alias that contains itself.

Problems come back as :class:`YamlProblem` (line, dotted path, message) so the caller can name its file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["MAX_DEPTH", "MAX_NODES", "YamlProblem", "YamlRejected", "load_checked"]

MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences accepted; scenario files need fewer than ten levels."""
MAX_NODES = 100_000
"""Most nodes a document may hold once aliases are expanded; a scenario file has a few hundred."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class YamlProblem:
    """One problem at ``line`` (1-based, or None) of a YAML text, at the dotted ``path`` (may be empty)."""

    line: int | None
    path: str
    message: str


class YamlRejected(Exception):
    """The text is not YAML, or is YAML this loader refuses; carries every problem found."""

    def __init__(self, problems: list[YamlProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))


def _line(mark: Any) -> int | None:
    return None if mark is None else int(mark.line) + 1


def _check_depth(text: str) -> None:
    """Walk the event stream (the parser is iterative, unlike the composer) and refuse deep nesting."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlRejected(
                    [YamlProblem(_line(event.start_mark), "", f"nesting deeper than {MAX_DEPTH} levels")]
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value


def _check_size(root: yaml.Node) -> None:
    """Refuse recursive aliases and documents that expand past :data:`MAX_NODES` (iterative, memoised)."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        nid = id(node)
        if expanded:
            on_path.discard(nid)
            size[nid] = min(1 + sum(size[id(c)] for c in _children(node)), MAX_NODES + 1)
            if size[nid] > MAX_NODES:
                raise YamlRejected(
                    [
                        YamlProblem(
                            _line(node.start_mark),
                            "",
                            f"the document expands to more than {MAX_NODES:,} values "
                            f"(through aliases); write it out or make it smaller",
                        )
                    ]
                )
            continue
        if nid in size:
            continue
        on_path.add(nid)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise YamlRejected([YamlProblem(_line(child.start_mark), "", "an alias refers to itself")])
            if id(child) not in size:
                stack.append((child, False))


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else f"<{type(node).__name__} key>"


def _duplicates(root: yaml.Node) -> list[YamlProblem]:
    """Every repeated key of every mapping, at the line of the repetition, with the first one's line."""
    problems: list[YamlProblem] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int | None] = {}
            for key, value in node.value:
                if key.tag == _MERGE_TAG:
                    continue
                name = _key_text(key)
                ident = (key.tag, name)
                if ident in first:
                    where = f" (first at line {first[ident]})" if first[ident] is not None else ""
                    problems.append(
                        YamlProblem(
                            _line(key.start_mark),
                            ".".join((*path, name)),
                            f"duplicate key {name!r}{where}; plain YAML would keep only the later value: remove one",
                        )
                    )
                else:
                    first[ident] = _line(key.start_mark)
                stack.append((value, (*path, name)))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, (*path, str(i))))
    problems.sort(key=lambda p: (p.line or 0, p.path))
    return problems


def load_checked(text: str) -> tuple[Any, yaml.Node | None]:
    """Parse ``text`` (safe tags only) into Python objects and its node tree (for line numbers).

    Raises :class:`YamlRejected` for invalid YAML, several documents, repeated keys, deep nesting or alias
    bombs; nothing in ``text`` can make this take more than linear time and memory in its length and
    :data:`MAX_NODES`.
    """
    try:
        _check_depth(text)
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                return None, None
            _check_size(root)
            problems = _duplicates(root)
            if problems:
                raise YamlRejected(problems)
            return loader.construct_document(root), root
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"{context}, {problem}" if context and problem else str(problem)
        raise YamlRejected([YamlProblem(_line(mark), "", f"invalid YAML: {message}")]) from None
    except (ValueError, OverflowError) as exc:  # e.g. a timestamp out of range: 2024-99-99
        raise YamlRejected([YamlProblem(None, "", f"invalid YAML: {exc}")]) from None
