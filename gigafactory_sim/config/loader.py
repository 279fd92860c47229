"""Load a scenario: YAML -> overrides -> pydantic -> cross-checks, with every problem reported at once.

Each problem names the file, the line (from the YAML node it concerns) and the field path. ``--set`` overrides
(``dotted.path=value``, list items by index) are applied to the parsed document before validation, so they are
validated exactly like the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from gigafactory_sim.config.safe_yaml import MAX_DEPTH, YamlRejected, load_checked
from gigafactory_sim.config.scenario import Scenario, ScenarioBase
from gigafactory_sim.config.semantics import semantic_problems
from gigafactory_sim.errors import InputProblem, ScenarioError
from gigafactory_sim.units import FROM_FILE

if TYPE_CHECKING:  # (a federation's modules are imported for a federation file only)
    from gigafactory_sim.federation.config import Federation

__all__ = [
    "MAX_SCENARIO_BYTES",
    "apply_override",
    "field_lines",
    "load_scenario",
    "locate_problems",
    "parse_scenario_text",
    "semantic_problems",
]


MAX_SCENARIO_BYTES = 10_000_000
"""Largest scenario file read (shipped ones are under 10 kB; data belongs in trace and series files)."""


def _node_line(root: yaml.Node | None, path: Sequence[str | int]) -> int | None:
    """1-based line of the deepest YAML node reachable along ``path``."""
    node = root
    line = None if node is None else node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _format_loc(loc: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in loc)


def apply_override(doc: dict[str, Any], assignment: str) -> list[str | int]:
    """Apply ``a.b.0.c=value`` to ``doc`` in place; the value is parsed as YAML. Returns the path."""
    if "=" not in assignment:
        raise ValueError(f"--set {assignment!r}: expected dotted.path=value")
    dotted, raw = assignment.split("=", 1)
    parts: list[str | int] = [
        int(p) if p.isascii() and p.isdigit() else p for p in dotted.strip().split(".") if p != ""
    ]
    if not parts:
        raise ValueError(f"--set {assignment!r}: empty path")
    if len(parts) > MAX_DEPTH:
        raise ValueError(f"--set {dotted}: a path of more than {MAX_DEPTH} parts")
    try:
        value = load_checked(raw)[0] if raw.strip() else ""
    except YamlRejected as exc:
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        raise ValueError(
            f"the value {shown!r} is read as YAML and is refused ({exc}); quote it to mean a "
            f"string, e.g. --set '{dotted.strip()}=\"...\"'"
        ) from None
    node: Any = doc
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                raise ValueError(f"--set {dotted}: no item {part} in {_format_loc(parts[:i]) or 'the scenario'}")
            node = node[part]
        elif isinstance(node, dict):
            if part not in node or node[part] is None:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
        else:
            raise ValueError(f"--set {dotted}: {_format_loc(parts[:i]) or 'the scenario'} is not a mapping or list")
    last = parts[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last > len(node):
            raise ValueError(f"--set {dotted}: no item {last}")
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ValueError(f"--set {dotted}: parent is not a mapping or list")
    return parts


def parse_scenario_text(
    text: str, file: str, overrides: Sequence[str] = (), base_dir: Path | None = None
) -> Scenario | Federation:
    """Validate scenario YAML ``text``; raise :class:`ScenarioError` with every problem."""
    try:
        doc, root = load_checked(text)
    except YamlRejected as exc:
        raise ScenarioError(
            [InputProblem(file=file, line=p.line, field=p.path, message=p.message) for p in exc.problems]
        ) from None
    if not isinstance(doc, dict):
        raise ScenarioError.single(file, "", "a scenario file must be a YAML mapping", line=1)
    override_paths: list[str] = []
    for assignment in overrides:
        try:
            override_paths.append(_format_loc(apply_override(doc, assignment)))
        except ValueError as exc:
            raise ScenarioError.single("--set", assignment.split("=", 1)[0].strip(), str(exc)) from None
    doc.setdefault("name", Path(file).stem)

    def where(loc: Sequence[str | int]) -> tuple[str, int | None]:
        dotted = _format_loc(loc)
        for o in override_paths:
            if dotted == o or dotted.startswith(o + ".") or o.startswith(dotted + "."):
                return f"--set {o}", None
        return file, _node_line(root, loc)

    model: type[Scenario] | type[Federation] = Scenario
    if "sites" in doc:
        from gigafactory_sim.federation.config import Federation

        model = Federation
    try:
        scenario = model.model_validate(doc, context={FROM_FILE: True})
    except ValidationError as exc:
        problems = []
        for loc, err in _relevant_errors(doc, exc):
            f, line = where(loc)
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = "unknown field (check the spelling; see `gigafactory-sim schema`)"
            problem = InputProblem(file=f, line=line, field=_format_loc(loc), message=message)
            if problem not in problems:
                problems.append(problem)
        raise ScenarioError(problems) from None
    except RecursionError:  # pragma: no cover - load_checked bounds the depth first
        raise ScenarioError.single(file, "", "the document is nested too deeply") from None
    scenario.locate(file, base_dir or Path(file).resolve().parent, _field_lines(root), tuple(override_paths))
    if isinstance(scenario, Scenario):
        semantic = semantic_problems(scenario)
    else:  # (a federation's checks import its sites' and the serving model's: only for a federation)
        from gigafactory_sim.federation.checks import federation_problems

        semantic = federation_problems(scenario)
    if semantic:
        problems = []
        for dotted, message in semantic:
            path: list[str | int] = [int(p) if p.isdigit() else p for p in dotted.split(".")]
            f, line = where(path)
            problems.append(InputProblem(file=f, line=line, field=dotted, message=message))
        raise ScenarioError(problems)
    return scenario


def _field_lines(root: yaml.Node | None) -> dict[str, int]:
    """The line of every mapping key and sequence item, by dotted path (first occurrence)."""
    lines: dict[str, int] = {}
    stack: list[tuple[yaml.Node, str]] = [] if root is None else [(root, "")]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        pairs: list[tuple[str, yaml.Node, int]] = []
        if isinstance(node, yaml.MappingNode):
            pairs = [(str(k.value), v, k.start_mark.line + 1) for k, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            pairs = [(str(i), v, v.start_mark.line + 1) for i, v in enumerate(node.value)]
        for name, child, line in pairs:
            dotted = f"{path}.{name}" if path else name
            lines.setdefault(dotted, line)
            stack.append((child, dotted))
    return lines


def field_lines(root: yaml.Node | None) -> dict[str, int]:
    """The line of every mapping key and sequence item of a parsed YAML node tree, by dotted path (first
    occurrence): how other input files (plan files) report their problems' lines like scenarios do."""
    return _field_lines(root)


def locate_problems(exc: ScenarioError, scenario: ScenarioBase) -> ScenarioError:
    """``exc`` with a line added to each problem in ``scenario``'s own file that lacks one (problems found while
    building the simulation name the field, not the line); fields set by ``--set`` are attributed to it."""
    lines = scenario.field_lines
    overrides = scenario.override_paths
    out = []
    for p in exc.problems:
        if p.line is None and p.file == scenario.source_file and p.field:
            field = p.field.split(" ", 1)[0]
            override = next(
                (o for o in overrides if field == o or field.startswith(o + ".") or o.startswith(field + ".")), None
            )
            if override is not None:
                p = InputProblem(file=f"--set {override}", line=None, field=p.field, message=p.message)
            else:
                parts = field.split(".")
                while parts and ".".join(parts) not in lines:
                    parts.pop()
                if parts:
                    p = InputProblem(file=p.file, line=lines[".".join(parts)], field=p.field, message=p.message)
        out.append(p)
    return ScenarioError(out)


_SCALAR_TYPES = frozenset({"float", "int", "str", "bool", "none", "decimal", "date", "datetime", "bytes"})


def _internal(part: str | int) -> bool:
    """A segment pydantic adds for a union member or a wrapped schema (``tagged-union[A,B]``,
    ``constrained-float``, ``function-after[...]``, ``float``): never a field name of a scenario file."""
    return isinstance(part, str) and ("[" in part or "-" in part or part in _SCALAR_TYPES)


def _scalar_branch(part: str | int) -> bool:
    """A union member that only takes a scalar (``float``, ``constrained-int``, ``literal['x']``)."""
    return isinstance(part, str) and (part in _SCALAR_TYPES or part.startswith(("constrained-", "literal[")))


def _clean_loc(doc: Any, loc: Sequence[str | int]) -> tuple[list[str | int], bool]:
    """Drop the segments pydantic inserts (``kind`` values of tagged unions, ``tagged-union[...]`` and other
    member names) so the path matches the file. Also says whether the error comes from a scalar member of a
    union where the file has a mapping or a list: noise when another member reports its own errors there."""
    out: list[str | int] = []
    node = doc
    wrong_branch = False
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            out.append(part)
        elif isinstance(node, dict) and node.get("kind") == part:
            continue
        elif _internal(part):
            wrong_branch = wrong_branch or (isinstance(node, dict | list) and _scalar_branch(part))
            continue
        elif isinstance(part, str) and node is not None and not isinstance(node, dict | list):
            continue  # a tag of a callable-discriminated union under a scalar (e.g. 'number')
        else:
            out.append(part)
            node = None
    return out, wrong_branch


def _relevant_errors(doc: Any, exc: ValidationError) -> list[tuple[list[str | int], Any]]:
    """Errors with clean paths, less those of union branches that cannot match the file's shape when another
    branch has its own errors at the same place (``a number`` is no news for a mapping with a typo)."""
    cleaned = [(*_clean_loc(doc, err["loc"]), err) for err in exc.errors()]
    kept = []
    for loc, wrong, err in cleaned:
        if wrong and any(not w and other[: len(loc)] == loc for other, w, _ in cleaned):
            continue
        kept.append((loc, err))
    return kept


def load_scenario(path: str | Path, overrides: Sequence[str] = ()) -> Scenario | Federation:
    """Read, override and validate a scenario file; raise :class:`ScenarioError` on any problem."""
    p = Path(path)
    try:
        if p.is_file() and p.stat().st_size > MAX_SCENARIO_BYTES:
            raise ScenarioError.single(
                str(path),
                "",
                f"the file is larger than {MAX_SCENARIO_BYTES:,} bytes; a scenario refers to its data files by path",
            )
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError.single(str(path), "", "file not found") from None
    except IsADirectoryError:
        raise ScenarioError.single(str(path), "", "is a directory, not a scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError.single(str(path), "", f"cannot read: {exc}") from None
    return parse_scenario_text(text, str(path), overrides, base_dir=p.resolve().parent)
