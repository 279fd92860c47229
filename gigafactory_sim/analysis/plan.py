"""A sweep's plan: the scenario text, fixed overrides, the grid axes and points, replications and seeds.

:func:`plan_sweep` validates every grid point before anything runs and reports all problems at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gigafactory_sim.analysis.grid import (
    DEFAULT_METRIC,
    Axis,
    GridPoint,
    axes_from_mapping,
    grid_points,
    load_sweep_file,
    replication_seed,
)
from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.errors import InputProblem, ScenarioError

__all__ = ["SweepPlan", "plan_from_sweep_file", "plan_sweep"]


@dataclass
class SweepPlan:
    """A validated sweep: the scenario text, fixed overrides, the grid and the replications."""

    name: str
    scenario_text: str
    scenario_file: str
    base_dir: str
    overrides: tuple[str, ...]
    axes: list[Axis]
    points: list[GridPoint]
    point_seeds: list[int]
    replications: int
    compact: bool = False
    metric: str = DEFAULT_METRIC
    param: str | None = None

    @property
    def n_runs(self) -> int:
        return len(self.points) * self.replications

    @property
    def plot_param(self) -> str | None:
        """The x axis of the plot: ``param``, else the first axis with more than one value."""
        varied = [a.path for a in self.axes if len(a.values) > 1]
        return self.param or (varied[0] if varied else (self.axes[0].path if self.axes else None))

    def identity(self) -> dict[str, Any]:
        """What must match for an output folder to be resumed (replications may grow, the plot may change)."""
        return {
            "scenario_text": self.scenario_text,
            "overrides": list(self.overrides),
            "compact": self.compact,
            "grid": {a.path: list(a.texts) for a in self.axes},
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scenario_file": self.scenario_file,
            **self.identity(),
            "replications": self.replications,
            "metric": self.metric,
            "param": self.plot_param,
            "seeds": "replication i: SeedSequence(point's scenario seed).spawn(i+1)[i], one uint32 word",
            "points": [
                {
                    "id": p.id,
                    "params": p.params,
                    "overrides": list(p.overrides),
                    "scenario_seed": s,
                    "seeds": [replication_seed(s, i) for i in range(self.replications)],
                }
                for p, s in zip(self.points, self.point_seeds, strict=True)
            ],
        }

    def run_dir(self, out_dir: Path, point: GridPoint, replication: int) -> Path:
        return out_dir / "points" / point.id / f"rep-{replication}"


def _source(scenario: str | Path | Scenario) -> tuple[str, str, str]:
    """``(yaml text, file name, base dir)`` of a scenario given as a path or an object."""
    if isinstance(scenario, Scenario):
        text = yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
        return text, scenario.source_file, str(scenario.base_dir)
    path = Path(scenario)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError.single(str(path), "", f"cannot read: {exc}") from None
    return text, str(path), str(path.resolve().parent)


def plan_sweep(
    scenario: str | Path | Scenario,
    grid: Mapping[str, Sequence[Any]] | Sequence[Axis] = (),
    *,
    replications: int = 1,
    overrides: Sequence[str] = (),
    compact: bool = False,
    metric: str = DEFAULT_METRIC,
    param: str | None = None,
    name: str | None = None,
) -> SweepPlan:
    """Build and validate a sweep. Every grid point's scenario is validated; all problems raise together as
    one :class:`ScenarioError` (each prefixed with the point) before anything runs."""
    if replications < 1:
        raise ScenarioError.single("--replications", "", "must be at least 1")
    axes = axes_from_mapping(grid) if isinstance(grid, Mapping) else list(grid)
    paths = [a.path for a in axes]
    if len(set(paths)) != len(paths):
        raise ScenarioError.single("--set", "", "a parameter is swept twice: " + ", ".join(paths))
    if param is not None and param not in paths:
        swept = ", ".join(paths) or "none"
        raise ScenarioError.single("--param", param, f"not a swept parameter; swept: {swept}")
    text, file, base_dir = _source(scenario)
    points = grid_points(axes)
    problems: dict[InputProblem, list[str]] = {}  # each problem once, with the points it occurs in
    seeds: list[int] = []
    scenario_name = Path(file).stem
    for point in points:
        try:
            sc = parse_scenario_text(text, file, [*overrides, *point.overrides], base_dir=Path(base_dir))
        except ScenarioError as exc:
            for p in exc.problems:
                problems.setdefault(p, []).append(point.id)
            continue
        seeds.append(sc.seed)
        scenario_name = sc.name or scenario_name
    if problems:

        def where(ids: list[str]) -> str:
            if len(points) == 1:
                return ""
            if len(ids) == len(points):
                return " (every point)"
            return f" (point{'s' if len(ids) > 1 else ''} {', '.join(ids)})"

        raise ScenarioError(
            [InputProblem(p.file, p.line, p.field, p.message + where(ids)) for p, ids in problems.items()]
        )
    return SweepPlan(
        name=name or scenario_name,
        scenario_text=text,
        scenario_file=file,
        base_dir=base_dir,
        overrides=tuple(overrides),
        axes=axes,
        points=points,
        point_seeds=seeds,
        replications=replications,
        compact=compact,
        metric=metric,
        param=param,
    )


def plan_from_sweep_file(
    path: Path,
    extra_axes: Sequence[Axis] = (),
    *,
    replications: int | None = None,
    compact: bool | None = None,
    metric: str | None = None,
    param: str | None = None,
    overrides: Sequence[str] = (),
) -> SweepPlan:
    """Plan the sweep a sweep file declares; ``extra_axes`` (``--set``) add to or replace its grid axes,
    ``overrides`` follow the file's, and the other arguments, when given, replace the file's values."""
    spec = load_sweep_file(path)
    axes = {a.path: a for a in axes_from_mapping(spec.grid)}
    axes.update({a.path: a for a in extra_axes})
    return plan_sweep(
        spec.scenario,
        list(axes.values()),
        replications=replications or spec.replications,
        overrides=[*spec.overrides, *overrides],
        compact=spec.compact if compact is None else compact,
        metric=metric or spec.metric,
        param=param or spec.param,
        name=spec.name,
    )
