"""Errors a user can act on: every problem in a scenario, each with file, line and field path."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["InputProblem", "ScenarioError"]


@dataclass(frozen=True)
class InputProblem:
    """One problem in an input: where it is and what is wrong."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class ScenarioError(Exception):
    """Raised for bad input (scenario, override or data file). Carries every problem found at once."""

    def __init__(self, problems: list[InputProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @classmethod
    def single(cls, file: str, field: str, message: str, line: int | None = None) -> ScenarioError:
        return cls([InputProblem(file=file, line=line, field=field, message=message)])
