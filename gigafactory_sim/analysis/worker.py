"""The unit of work of a sweep: one replication of one grid point. Top-level and picklable, so any executor
(a local process pool, a Dask cluster) can run it.

A task carries the scenario *text*, not a path or a parsed object, so a worker needs no access to the
scenario file; only a scenario referencing data files (traces) needs them at the same path on the worker. In
full mode the worker writes the run directory itself (a Dask cluster then needs the output folder on a shared
file system); in compact mode or in memory it only returns the summary, and the caller writes it.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["RunOutcome", "RunTask", "execute"]


@dataclass(frozen=True)
class RunTask:
    """One run of a sweep. ``overrides`` are the point's (``seed=`` is added from ``seed``)."""

    point_id: str
    point_index: int
    replication: int
    seed: int
    scenario_text: str
    scenario_file: str
    base_dir: str
    overrides: tuple[str, ...]
    run_dir: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def all_overrides(self) -> list[str]:
        return [*self.overrides, f"seed={self.seed}"]


@dataclass(frozen=True)
class RunOutcome:
    """What came back from one task: the summary (as stored in ``summary.json``) or the error."""

    point_id: str
    point_index: int
    replication: int
    seed: int
    status: Literal["completed", "failed"]
    summary: dict[str, Any] | None = None
    error: str | None = None


def execute(task: RunTask) -> RunOutcome:
    """Run ``task``; in full mode write its run directory (or its failure record). Never raises for a failed
    simulation: the error is returned, so one bad run does not stop a sweep."""
    from gigafactory_sim.api import run
    from gigafactory_sim.config.loader import parse_scenario_text
    from gigafactory_sim.estimate import Limits, check_limits
    from gigafactory_sim.report.writer import to_json, write_failure, write_run

    t0 = time.perf_counter()
    overrides = task.all_overrides
    meta = {**task.meta, "seed": task.seed, "overrides": overrides}

    def outcome(
        status: Literal["completed", "failed"], summary: dict[str, Any] | None = None, error: str | None = None
    ) -> RunOutcome:
        return RunOutcome(task.point_id, task.point_index, task.replication, task.seed, status, summary, error)

    try:
        scenario = parse_scenario_text(task.scenario_text, task.scenario_file, overrides, base_dir=Path(task.base_dir))
        check_limits(scenario, Limits.resolve(scenario))  # refuse a run beyond the scenario's limits
        result = run(scenario)
        summary = json.loads(to_json(result.summary))  # exactly what summary.json holds (NaN -> null)
        if task.run_dir is not None:
            write_run(result, Path(task.run_dir), meta={**meta, "wall_s": time.perf_counter() - t0})
    except Exception as exc:  # recorded, reported by the caller; the sweep goes on
        error = f"{type(exc).__name__}: {exc}"
        if task.run_dir is not None:
            with contextlib.suppress(OSError):  # the folder holds something else; the error is still returned
                write_failure(Path(task.run_dir), {**meta, "wall_s": time.perf_counter() - t0}, error)
        return outcome("failed", error=error)
    return outcome("completed", summary)
