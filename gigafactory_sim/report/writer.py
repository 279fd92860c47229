"""Write a run directory: the data, the report, and ``run.json`` (also written, alone, when a run fails).

A completed run appears all at once: everything is written into a hidden temporary sibling
(``.{name}.tmp-<pid>``) which is renamed to the target only when complete, so a crash mid-write never leaves a
half-written run directory. A killed process (SIGKILL) can leave the hidden temporary; the next write of the
same target, or ``gigafactory-sim clean``, removes those whose process is dead (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from gigafactory_sim.eed.report import eed_files, run_rows
from gigafactory_sim.report.files import (
    JOBS,
    RUN,
    SCENARIO,
    SITES_DIR,
    SUMMARY,
    TIMESERIES,
    report_files,
)
from gigafactory_sim.result import RunResult

__all__ = [
    "pid_alive",
    "remove_stale_temps",
    "remove_stale_temps_under",
    "run_status",
    "to_json",
    "write_failure",
    "write_parquet",
    "write_run",
]


def _jsonable(obj: Any) -> Any:
    """Plain JSON types: NaN and infinities -> None, numpy -> Python, paths and dates -> str."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, datetime | date | pd.Timestamp):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def to_json(obj: Any) -> str:
    """``obj`` as strict JSON (indent 2, keys in given order, NaN -> null); unknown objects as ``str``."""
    return (
        json.dumps(_jsonable(obj), indent=2, sort_keys=False, allow_nan=False, ensure_ascii=False, default=str) + "\n"
    )


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, engine="pyarrow", index=False)


def _write_files(root: Path, files: Mapping[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>[0-9]+)$")
"""Hidden siblings this module writes through: ``.NAME.tmp-PID`` (being written), ``.NAME.old-PID`` (being
replaced). A crash (SIGKILL, power loss) can leave them; :func:`remove_stale_temps` removes those of dead PIDs."""


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (signal 0: no signal is sent)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def remove_stale_temps(folder: Path, name: str | None = None) -> list[Path]:
    """Remove the hidden temporaries in ``folder`` (only those for ``name`` if given) whose writing process
    is dead; return what was removed. Never touches a live process's temporaries or anything else."""
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = TEMP_PATTERN.match(entry.name)
        if match is None or (name is not None and match["name"] != name):
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or pid_alive(pid):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed


def remove_stale_temps_under(root: Path, depth: int = 4) -> list[Path]:
    """:func:`remove_stale_temps` in ``root`` and the folders below it, ``depth`` levels down (run folders,
    sweep points and replications); symbolic links and hidden folders are not entered."""
    removed: list[Path] = []
    stack = [(Path(root), 0)]
    while stack:
        folder, level = stack.pop()
        removed += remove_stale_temps(folder)
        if level < depth:
            try:
                stack += [
                    (p, level + 1)
                    for p in folder.iterdir()
                    if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
                ]
            except OSError:
                continue
    return removed


def run_status(target: Path) -> str:
    """What ``target`` holds: ``absent``, ``empty``, ``not-a-directory``, the ``status`` in its ``run.json``
    (``completed``, ``failed``, ``interrupted``), or ``unknown`` (files that are not a run directory)."""
    target = Path(target)
    if not target.exists():
        return "absent"
    if not target.is_dir():
        return "not-a-directory"
    if not any(target.iterdir()):
        return "empty"
    try:
        status = json.loads((target / RUN).read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return "unknown"
    return str(status) if status in ("completed", "failed", "interrupted") else "unknown"


def _refuse_if_occupied(target: Path, replace: bool = False) -> None:
    if target.is_dir():
        if any(target.iterdir()) and not (replace and run_status(target) != "unknown"):
            raise FileExistsError(f"{target} already exists and is not empty; choose another directory")
    elif target.exists():
        raise FileExistsError(f"{target} already exists and is not a directory")


def _publish(tmp: Path, target: Path, replace: bool = False) -> None:
    """Rename the finished ``tmp`` to ``target``. An empty ``target`` is replaced; a run directory only with
    ``replace`` (moved aside first, removed once ``tmp`` is in place); anything else never."""
    _refuse_if_occupied(target, replace)
    old: Path | None = None
    if target.is_dir():
        if any(target.iterdir()):
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            if old.exists():
                shutil.rmtree(old)
            os.rename(target, old)
        else:
            target.rmdir()
    try:
        os.rename(tmp, target)
    except OSError as exc:  # someone filled ``target`` since the check
        if old is not None:
            with contextlib.suppress(OSError):
                os.rename(old, target)
        raise FileExistsError(f"{target} appeared while the run was being written: {exc}") from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _temp_dir(where: Path) -> Path:
    where.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(where.parent, where.name)  # left by earlier runs of this target that were killed
    tmp = where.parent / f".{where.name}.tmp-{os.getpid()}"
    if tmp.exists():  # left by an earlier crashed process that had our pid
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def _write_site(folder: Path, result: RunResult, report: bool) -> list[dict[str, Any]]:
    """Write one site's data and report; return its EED report rows."""
    folder.mkdir(parents=True)
    _write_text(folder / SUMMARY, to_json(result.summary))
    rows = run_rows(result.scenario, result.summary, result.timeseries)
    _write_files(folder, eed_files(rows))
    write_parquet(result.timeseries, folder / TIMESERIES)
    write_parquet(result.jobs, folder / JOBS)
    if report:
        _write_files(
            folder, report_files(result.summary, result.timeseries, result.jobs, plots=result.scenario.report.plots)
        )
    return rows


def write_run(
    result: RunResult,
    out_dir: Path,
    *,
    meta: dict[str, Any],
    status: str = "completed",
    replace: bool = False,
    report: bool = True,
) -> Path:
    """Write ``result`` as a run directory at ``out_dir`` and return its path.

    ``out_dir`` may be absent or an empty directory (replaced); a non-empty one raises
    :class:`FileExistsError` before anything is written, unless ``replace`` and it is a run directory (then it
    is replaced whole, once the new one is complete). ``run.json`` is ``meta`` plus ``"status": status``
    (``interrupted`` for the partial tables of a stopped run). Plots are drawn unless the scenario's
    ``report.plots`` is false. Without ``report`` only the data and ``run.json`` are written (no
    ``report.md``/``report.html``, no plots, matplotlib never imported);
    :func:`gigafactory_sim.report.loader.rerender` renders them later.
    """
    target = Path(out_dir)
    where = target.absolute()
    _refuse_if_occupied(where, replace)
    tmp = _temp_dir(where)
    try:
        _write_text(tmp / SUMMARY, to_json(result.summary))
        write_parquet(result.timeseries, tmp / TIMESERIES)
        write_parquet(result.jobs, tmp / JOBS)
        _write_text(
            tmp / SCENARIO, yaml.safe_dump(result.scenario.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
        )
        if report:
            _write_files(
                tmp, report_files(result.summary, result.timeseries, result.jobs, plots=result.scenario.report.plots)
            )
        site_rows = [  # a federation: each site's own data and report
            row for name, site in result.sites.items() for row in _write_site(tmp / SITES_DIR / name, site, report)
        ]
        # the EU data-centre report: this site's, or a federation's combined table of every site
        rows = site_rows if result.sites else run_rows(result.scenario, result.summary, result.timeseries)
        _write_files(tmp, eed_files(rows))
        _write_text(tmp / RUN, to_json({**meta, "status": status}))
        _publish(tmp, where, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def write_failure(
    out_dir: Path, meta: dict[str, Any], error: str, *, status: str = "failed", replace: bool = False
) -> Path:
    """Record a failed (or ``interrupted``) run: ``out_dir/run.json`` with ``meta``, ``"status"`` and
    ``"error"``, published whole like a run directory.

    Refuses (:class:`FileExistsError`) a non-empty ``out_dir`` unless ``replace`` and it is a run directory,
    so a failure can never overwrite files that are not a run. Returns ``out_dir``.
    """
    target = Path(out_dir)
    where = target.absolute()
    _refuse_if_occupied(where, replace)
    tmp = _temp_dir(where)
    try:
        _write_text(tmp / RUN, to_json({**meta, "status": status, "error": error}))
        _publish(tmp, where, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
