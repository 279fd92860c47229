"""Write a run directory: the data, the report, and ``run.json`` (also written, alone, when a run fails).

A completed run appears all at once: everything is written into a hidden temporary sibling
(``.{name}.tmp-<pid>``) which is renamed to the target only when complete, so a crash mid-write leaves neither
a half-written run directory nor the temporary one behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from gigafactory_sim.report.files import (
    JOBS,
    RUN,
    SCENARIO,
    SUMMARY,
    TIMESERIES,
    atomic_write,
    report_files,
)
from gigafactory_sim.result import RunResult

__all__ = ["to_json", "write_failure", "write_run"]


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
    return json.dumps(_jsonable(obj), indent=2, sort_keys=False, allow_nan=False, ensure_ascii=False,
                      default=str) + "\n"


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, engine="pyarrow", index=False)


def _write_files(root: Path, files: Mapping[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _refuse_if_occupied(target: Path) -> None:
    if target.is_dir():
        if any(target.iterdir()):
            raise FileExistsError(f"{target} already exists and is not empty; choose another directory")
    elif target.exists():
        raise FileExistsError(f"{target} already exists and is not a directory")


def _publish(tmp: Path, target: Path) -> None:
    """Rename the finished ``tmp`` to ``target``, replacing an empty directory but never a non-empty one."""
    _refuse_if_occupied(target)
    if target.is_dir():
        target.rmdir()
    try:
        os.rename(tmp, target)
    except OSError as exc:  # someone filled ``target`` since the check
        raise FileExistsError(f"{target} appeared while the run was being written: {exc}") from exc


def write_run(result: RunResult, out_dir: Path, *, meta: dict[str, Any]) -> Path:
    """Write ``result`` as a run directory at ``out_dir`` and return its path.

    ``out_dir`` may be absent or an empty directory (replaced); a non-empty one raises
    :class:`FileExistsError` before anything is written. ``run.json`` is ``meta`` plus
    ``"status": "completed"``. Plots are drawn unless the scenario's ``report.plots`` is false.
    """
    target = Path(out_dir)
    where = target.absolute()
    _refuse_if_occupied(where)
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = where.parent / f".{where.name}.tmp-{os.getpid()}"
    if tmp.exists():  # left by an earlier crashed process that had our pid
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        _write_text(tmp / SUMMARY, to_json(result.summary))
        _write_parquet(result.timeseries, tmp / TIMESERIES)
        _write_parquet(result.jobs, tmp / JOBS)
        _write_text(tmp / SCENARIO, yaml.safe_dump(result.scenario.model_dump(mode="json"), sort_keys=False,
                                                   allow_unicode=True))
        _write_files(tmp, report_files(result.summary, result.timeseries, result.jobs,
                                       plots=result.scenario.report.plots))
        _write_text(tmp / RUN, to_json({**meta, "status": "completed"}))
        _publish(tmp, where)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def write_failure(out_dir: Path, meta: dict[str, Any], error: str) -> Path:
    """Record a failed run: ``out_dir/run.json`` with ``meta``, ``"status": "failed"`` and ``"error"``.

    Creates ``out_dir`` if needed. Refuses (:class:`FileExistsError`) a non-empty ``out_dir``, so a failure
    can never overwrite the record of an earlier run. Returns ``out_dir``.
    """
    target = Path(out_dir)
    _refuse_if_occupied(target)
    target.mkdir(parents=True, exist_ok=True)
    atomic_write(target / RUN, to_json({**meta, "status": "failed", "error": error}).encode("utf-8"))
    return target
