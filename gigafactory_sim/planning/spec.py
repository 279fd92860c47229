"""A plan file: the scenario to size, the design variables, the constraints, the objective, costs and search.

Parsed with the scenario loader's YAML reader (safe tags, line numbers), validated with pydantic (``extra``
forbidden), and every problem comes back at once as a :class:`ScenarioError` naming the plan file, the line and
the field. :func:`~gigafactory_sim.planning.check.check_plan` then checks the variables and constraints against the
scenario itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, ValidationError, model_validator

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.config.loader import field_lines
from gigafactory_sim.config.safe_yaml import YamlRejected, load_checked
from gigafactory_sim.errors import InputProblem, ScenarioError
from gigafactory_sim.planning.constraints import Constraint, parse_constraint
from gigafactory_sim.planning.costs import Costs

__all__ = ["ChoiceVar", "FloatVar", "IntVar", "PlanFile", "PlanSpec", "Search", "Variable", "load_plan_file"]


class IntVar(StrictModel):
    """An integer range ``low..high`` in steps of ``step`` (both ends included when on the step)."""

    low: int
    high: int
    step: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _range(self) -> IntVar:
        if self.high < self.low:
            raise ValueError(f"empty range: high {self.high} < low {self.low}")
        return self


class FloatVar(StrictModel):
    """A continuous range ``low..high`` (``step`` optional: a discretised range)."""

    low: float
    high: float
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _range(self) -> FloatVar:
        if self.high < self.low:
            raise ValueError(f"empty range: high {self.high} < low {self.low}")
        return self


class ChoiceVar(StrictModel):
    """One of ``choices`` (GPU names, scheduler kinds, mappings: any YAML value)."""

    choices: list[Any] = Field(min_length=1)


Variable = IntVar | FloatVar | ChoiceVar
_TAGS = ("int", "float", "choices")


def _kind(value: Any) -> str:
    """``choices`` when given; a range is of integers when its ends and its step are integers, else continuous."""
    if not isinstance(value, dict) or "choices" in value:
        return "choices"
    ints = all(isinstance(value.get(k), int) and not isinstance(value.get(k), bool) for k in ("low", "high", "step"))
    return "int" if ints else "float"


VariableSpec = Annotated[
    Annotated[IntVar, Tag("int")] | Annotated[FloatVar, Tag("float")] | Annotated[ChoiceVar, Tag("choices")],
    Discriminator(_kind),
]


class Search(StrictModel):
    """How the design space is searched."""

    sampler: Literal["tpe", "nsga2", "grid"] = "tpe"
    trials: int = Field(default=40, ge=1, le=100_000)
    replications: int = Field(default=1, ge=1, le=1000, description="runs per trial, the same seeds in every trial")
    seed: int = Field(default=0, ge=0)
    startup_trials: int = Field(default=10, ge=1, description="random trials before TPE models the results")
    enqueue: list[dict[str, Any]] = Field(
        default_factory=list, description="designs tried first ({variable: value}), e.g. the scenario as written"
    )


class PlanFile(StrictModel):
    """The plan file as written (YAML)."""

    scenario: str = Field(description="the scenario to size, relative to the plan file")
    name: str | None = None
    horizon: str | None = Field(default=None, description="overrides the scenario's horizon (e.g. 3d)")
    warmup: str | None = Field(default=None, description="statistics.warmup: constraints read steady-state KPIs")
    overrides: list[str] = Field(default_factory=list, description="fixed --set overrides for every trial")
    variables: dict[str, VariableSpec] = Field(min_length=1)
    constraints: list[str] = Field(default_factory=list)
    confidence: float | None = Field(default=None, gt=0.5, lt=1.0, description="one-sided t bound over replications")
    objective: str | list[str] = "cost"
    costs: Costs = Field(default_factory=Costs)
    search: Search = Field(default_factory=Search)

    @property
    def objectives(self) -> list[str]:
        return [self.objective] if isinstance(self.objective, str) else list(self.objective)


class PlanSpec:
    """A validated plan file: the file model, where it is, the scenario it names and the parsed constraints."""

    def __init__(self, file: PlanFile, path: Path, lines: dict[str, int], constraints: list[Constraint]) -> None:
        self.file = file
        self.path = path
        self.lines = lines
        self.constraints = constraints

    @property
    def name(self) -> str:
        return self.file.name or self.path.stem

    @property
    def scenario_path(self) -> Path:
        return self.path.parent / self.file.scenario

    def line(self, dotted: str) -> int | None:
        """The plan file's line of ``dotted`` (or of its nearest parent that has one)."""
        return _nearest(self.lines, dotted)

    def variable_line(self, path: str) -> int | None:
        return self.lines.get(f"variables.{path}")

    def problem(self, field: str, message: str, line: int | None = None) -> InputProblem:
        return InputProblem(str(self.path), line if line is not None else self.line(field), field, message)

    def fixed_overrides(self) -> list[str]:
        """The overrides every trial gets: the file's, then the horizon and warm-up."""
        out = list(self.file.overrides)
        if self.file.horizon is not None:
            out.append(f"horizon={self.file.horizon}")
        if self.file.warmup is not None:
            out.append(f"statistics.warmup={self.file.warmup}")
        return out


def _loc(loc: tuple[int | str, ...]) -> str:
    """A pydantic error path as the plan's dotted field (a variable's kind tag dropped; its name kept whole)."""
    parts = [str(p) for p in loc]
    if len(parts) >= 3 and parts[0] == "variables" and parts[2] in _TAGS:
        del parts[2]
    return ".".join(parts)


def load_plan_file(path: str | Path) -> PlanSpec:
    """Read and validate a plan file (every problem at once, with its line); the scenario is not read here."""
    p = Path(path)
    file = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError.single(file, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError.single(file, "", f"cannot read: {exc}") from None
    try:
        doc, root = load_checked(text)
    except YamlRejected as exc:
        raise ScenarioError([InputProblem(file, q.line, q.path, q.message) for q in exc.problems]) from None
    if not isinstance(doc, dict):
        raise ScenarioError.single(file, "", "a plan file must be a YAML mapping", line=1)
    lines = field_lines(root)  # a variable's dotted name is one key: variables.facility.clusters.0.nodes
    problems: list[InputProblem] = []
    try:
        plan = PlanFile.model_validate(doc)
    except ValidationError as exc:
        for err in exc.errors():
            dotted = _loc(err["loc"])
            line = _nearest(lines, dotted)
            message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            problem = InputProblem(file, line, dotted, message)
            if problem not in problems:
                problems.append(problem)
        raise ScenarioError(problems) from None
    constraints: list[Constraint] = []
    for i, text_i in enumerate(plan.constraints):
        try:
            constraints.append(parse_constraint(text_i))
        except ValueError as exc:
            problems.append(InputProblem(file, lines.get(f"constraints.{i}"), f"constraints.{i}", str(exc)))
    if problems:
        raise ScenarioError(problems)
    return PlanSpec(plan, p, lines, constraints)


def _nearest(lines: dict[str, int], dotted: str) -> int | None:
    """The line of ``dotted`` or of the nearest enclosing field that has one."""
    while dotted:
        if dotted in lines:
            return lines[dotted]
        dotted = dotted.rsplit(".", 1)[0] if "." in dotted else ""
    return None
