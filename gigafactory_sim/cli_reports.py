"""Commands on finished runs: ``report`` (re-render the pages) and ``eed`` (print the EU data-centre report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gigafactory_sim.cli_app import app, fail, out_console
from gigafactory_sim.cli_tables import rows_table


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory")],
) -> None:
    """Re-render a run's report (report.md, report.html, plots) from its stored results."""
    from gigafactory_sim.report.loader import rerender

    try:
        rerender(run_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    out_console.print(f"report re-rendered: {run_dir / 'report.html'}", highlight=False)


@app.command()
def eed(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (a federation's shows every site)")],
) -> None:
    """Print a run's EU data-centre report (EED Annex VII figures per site and calendar year)."""
    from gigafactory_sim.eed.report import EED_JSON, document_rows
    from gigafactory_sim.report.eed_tables import eed_table_rows

    path = run_dir / EED_JSON
    try:
        rows = document_rows(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise fail(f"{path} not found: is {run_dir} a run directory written by this version?") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise fail(f"{path} is not an EED report: {exc}") from None
    if not rows:
        raise fail(f"{path} has no reports")
    headers, body = eed_table_rows(rows)
    out_console.print(rows_table([headers, *body], f"EU data-centre report (EED): {run_dir}"))
