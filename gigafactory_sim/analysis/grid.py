"""A sweep's grid: axes (a scenario field and its values), the points of their Cartesian product, the seed of
each replication, and the sweep file that declares them.

Seeds: replication ``i`` of a point runs with ``SeedSequence(scenario_seed).spawn(i + 1)[i]`` reduced to
one 32-bit word (:func:`replication_seed`). The scenario seed is the point's own (after its overrides), so
every point sees the same random streams in replication ``i`` (common random numbers), and adding replications
never changes the seeds of those already run.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import Field, ValidationError

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.errors import InputProblem, ScenarioError

__all__ = [
    "Axis",
    "GridPoint",
    "SweepFile",
    "grid_points",
    "load_sweep_file",
    "parse_axis",
    "replication_seed",
    "split_values",
]

DEFAULT_METRIC = "utilisation.allocated_fraction"


def replication_seed(scenario_seed: int, replication: int) -> int:
    """The seed of replication ``replication``: child ``replication`` of ``SeedSequence(scenario_seed)``."""
    child = np.random.SeedSequence(scenario_seed, spawn_key=(replication,))
    return int(child.generate_state(1, dtype=np.uint32)[0])


@dataclass(frozen=True)
class Axis:
    """One swept field: its dotted path, its values (parsed) and the ``--set`` text of each value."""

    path: str
    values: tuple[Any, ...]
    texts: tuple[str, ...]

    def override(self, i: int) -> str:
        return f"{self.path}={self.texts[i]}"


@dataclass(frozen=True)
class GridPoint:
    """One point of the grid: its index, a stable id (a directory name), its parameters and overrides."""

    index: int
    id: str
    params: dict[str, Any]
    overrides: tuple[str, ...]


def split_values(text: str) -> list[str]:
    """Split ``1,2,[3,4],"a,b"`` at top-level commas (not inside brackets, braces or quotes)."""
    parts: list[str] = []
    depth, quote = 0, ""
    current: list[str] = []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return parts


def parse_axis(assignment: str) -> Axis:
    """``a.b=1,2,3`` -> an axis. Raises :class:`ScenarioError` on a malformed assignment."""
    if "=" not in assignment:
        raise ScenarioError.single("--set", assignment, "expected dotted.path=value[,value...]")
    path, raw = (s.strip() for s in assignment.split("=", 1))
    texts = split_values(raw)
    if not path or any(t == "" for t in texts):
        raise ScenarioError.single("--set", path, f"{assignment!r}: empty path or value")
    try:
        values = tuple(yaml.safe_load(t) for t in texts)
    except yaml.YAMLError as exc:
        raise ScenarioError.single("--set", path, f"invalid value: {exc}") from None
    return Axis(path, values, tuple(texts))


def axis_from_values(path: str, values: Sequence[Any]) -> Axis:
    """An axis from Python values (a sweep file, the API); each is written as JSON, which YAML reads back."""
    return Axis(path, tuple(values), tuple(v if isinstance(v, str) and _plain(v) else json.dumps(v) for v in values))


def _plain(text: str) -> bool:
    """Whether YAML reads ``text`` back as the same string (so the override stays readable)."""
    try:
        return bool(yaml.safe_load(text) == text) and "," not in text
    except yaml.YAMLError:
        return False


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(value)).strip("_")[:24] or "x"


def grid_points(axes: Sequence[Axis]) -> list[GridPoint]:
    """The Cartesian product of ``axes`` (first axis slowest), each point with an id like ``p003-nodes=32``."""
    leaves = [a.path.rsplit(".", 1)[-1] for a in axes]
    short = [leaf if leaves.count(leaf) == 1 else a.path for leaf, a in zip(leaves, axes, strict=True)]
    points = []
    for index, combo in enumerate(itertools.product(*(range(len(a.values)) for a in axes))):
        varied = [
            f"{_slug(s)}={_slug(a.values[i])}" for s, a, i in zip(short, axes, combo, strict=True) if len(a.values) > 1
        ]
        point_id = "-".join([f"p{index:03d}", *varied])[:100]
        chosen = list(zip(axes, combo, strict=True))
        points.append(
            GridPoint(
                index, point_id, {a.path: a.values[i] for a, i in chosen}, tuple(a.override(i) for a, i in chosen)
            )
        )
    return points


class SweepFile(StrictModel):
    """A sweep file (YAML). ``scenario`` is relative to the sweep file's folder."""

    scenario: str
    name: str | None = None
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted.path: [values]")
    overrides: list[str] = Field(default_factory=list, description="fixed --set overrides for every point")
    replications: int = Field(default=1, ge=1)
    compact: bool = False
    metric: str = DEFAULT_METRIC
    param: str | None = Field(default=None, description="the parameter on the plot's x axis")


def is_sweep_file(path: Path) -> bool:
    """A YAML mapping with a ``grid`` key and a ``scenario`` key is a sweep file, not a scenario."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and "grid" in doc and isinstance(doc.get("scenario"), str)


def load_sweep_file(path: Path) -> SweepFile:
    """Read and validate a sweep file; the scenario path comes back resolved against the file's folder."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = SweepFile.model_validate(doc)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ScenarioError.single(str(path), "", f"cannot read the sweep file: {exc}") from None
    except ValidationError as exc:
        raise ScenarioError(
            [InputProblem(str(path), None, ".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        ) from None
    return spec.model_copy(update={"scenario": str(path.parent / spec.scenario)})


def axes_from_mapping(grid: Mapping[str, Sequence[Any] | Any]) -> list[Axis]:
    """Axes from ``{path: [values]}`` (a scalar is one value)."""
    axes = []
    for path, values in grid.items():
        seq = list(values) if isinstance(values, list | tuple) else [values]
        if not seq:
            raise ScenarioError.single("grid", path, "no values")
        axes.append(axis_from_values(path, seq))
    return axes
