"""What every command of the command line shares: the Typer app, the two consoles, and how input problems and
failures are printed (exit code 2 unless said otherwise). Commands live in :mod:`gigafactory_sim.cli` (runs,
checks, comparisons and sweeps), :mod:`gigafactory_sim.cli_reports` (reports of finished runs) and
:mod:`gigafactory_sim.cli_plan` (capacity planning)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from gigafactory_sim.errors import ScenarioError

__all__ = ["SetOption", "app", "err_console", "fail", "out_console", "progress_bar", "report_problems"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Simulate AI compute facilities: GPUs, training jobs, power and energy.",
)
out_console = Console()
err_console = Console(stderr=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a scenario field: dotted.path=value (list items by index). Repeatable."),
]


def report_problems(exc: ScenarioError) -> None:
    """Every problem of a bad input, one per line (file, line, field, message)."""
    err_console.print(f"[bold red]error:[/] {len(exc.problems)} problem(s) in the input", highlight=False)
    for problem in exc.problems:
        err_console.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)


def progress_bar(detail: str, quiet: bool) -> Progress:
    """The command line's progress bar on stderr: description, bar, ``detail`` (a rich column template), time."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn(detail),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
        transient=True,
    )


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error and return the exit to raise (``raise fail(...) from None``)."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)
