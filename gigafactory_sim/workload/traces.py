"""Trace replay of training jobs from CSV: a generic format and an adapter for the Microsoft Philly trace.

Generic CSV columns (header required):
  ``submit_s`` (seconds from the scenario start) *or* ``submit_time`` (ISO 8601, UTC),
  ``gpus``, and one of ``duration_s`` (run time at reference speed), ``work_gpu_h`` (GPU-hours at reference speed),
  or ``flops`` with ``mfu`` (and the reference GPU's peak); optional ``priority`` (int) and ``tenant``.
Philly (``format: philly``): ``timestamp, duration, num_gpus[, gpu_time], cluster`` as processed by the Pollux
artifact (Jeon et al., ATC'19; Qiao et al., OSDI'21; CC BY 4.0). ``builtin:philly_2017.csv.gz`` is the whole trace
(82,247 jobs), shipped with its attribution in ``gigafactory_sim/data/``.

A bad row is reported with its file and line; nothing is silently dropped.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.workload.jobs import JobBatch

__all__ = ["MAX_JOB_GPUS", "TraceTraining", "resolve_data_path"]

BUILTIN_PREFIX = "builtin:"
MAX_JOB_GPUS = 1_000_000_000
"""Largest job a trace row may ask for (a billion GPUs: far beyond any facility, well inside int64)."""


def resolve_data_path(path: str, base_dir: Path) -> Path:
    """A path in a scenario: ``builtin:NAME`` is a file shipped in the package; others are relative to the file."""
    if path.startswith(BUILTIN_PREFIX):
        return Path(str(resources.files("gigafactory_sim") / "data" / path[len(BUILTIN_PREFIX) :]))
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base_dir / p)


def _bad_rows(values: pd.Series, ok: pd.Series) -> list[int]:
    return [int(i) for i in values.index[~ok][:5]]


class TraceTraining(StrictModel):
    """Replay of training jobs from a CSV trace."""

    kind: Literal["trace"] = "trace"
    name: str = "trace"
    path: str
    format: Literal["generic", "philly"] = "generic"
    align: Literal["first_job", "absolute"] = Field(
        default="first_job",
        description="first_job: the first submission is at the scenario start; absolute: times as written",
    )
    time_scale: float = Field(default=1.0, gt=0, description="multiplies inter-arrival times (0.5 = twice the rate)")
    max_jobs: int | None = Field(default=None, gt=0)
    gpu_load: float | None = Field(default=None, gt=0, le=1)
    clusters: list[str] | None = None
    priority: int = 0

    def build(
        self,
        rng: np.random.Generator,
        horizon_s: float,
        start: datetime,
        default_load: float,
        *,
        base_dir: Path,
        field_path: str,
        reference_peak_tflops: float,
    ) -> JobBatch:
        path = resolve_data_path(self.path, base_dir)
        if not path.is_file():
            raise ScenarioError.single(str(path), f"{field_path}.path", "trace file not found")
        try:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=self.max_jobs)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise ScenarioError.single(str(path), f"{field_path}.path", f"cannot parse CSV: {exc}") from None
        raw.index = raw.index + 2  # file line numbers (header is line 1)
        if self.format == "philly":
            raw = raw.rename(
                columns={"num_gpus": "gpus", "duration": "duration_s", "timestamp": "submit_time", "cluster": "tenant"}
            )
        return self._to_batch(raw, str(path), field_path, horizon_s, start, default_load, reference_peak_tflops)

    def _to_batch(
        self,
        raw: pd.DataFrame,
        file: str,
        field_path: str,
        horizon_s: float,
        start: datetime,
        default_load: float,
        reference_peak_tflops: float,
    ) -> JobBatch:
        def fail(column: str, lines: list[int], what: str) -> ScenarioError:
            shown = ", ".join(str(x) for x in lines)
            return ScenarioError.single(
                file, f"{field_path} (column {column!r})", f"{what} at line(s) {shown}", line=lines[0]
            )

        def numeric(column: str) -> pd.Series:
            values = pd.to_numeric(raw[column], errors="coerce")
            ok = np.isfinite(values.to_numpy(dtype=float))
            if not ok.all():
                raise fail(column, _bad_rows(values, pd.Series(ok, index=values.index)), "not a number")
            return values.astype(float)

        if "submit_s" in raw.columns:
            submit = numeric("submit_s")
        elif "submit_time" in raw.columns:
            parsed = pd.to_datetime(raw["submit_time"], errors="coerce", utc=True)
            ok = parsed.notna()
            if not ok.all():
                raise fail("submit_time", _bad_rows(parsed, ok), "not a timestamp")
            origin = (
                pd.Timestamp(start).tz_convert("UTC") if pd.Timestamp(start).tzinfo else pd.Timestamp(start, tz="UTC")
            )
            submit = (parsed - origin).dt.total_seconds()
        else:
            raise ScenarioError.single(file, field_path, "the trace needs a 'submit_s' or 'submit_time' column")
        if "gpus" not in raw.columns:
            raise ScenarioError.single(file, field_path, "the trace needs a 'gpus' column")
        gpus = numeric("gpus")
        bad = (gpus <= 0) | (gpus != np.floor(gpus)) | (gpus > MAX_JOB_GPUS)
        if bad.any():
            raise fail("gpus", _bad_rows(gpus, ~bad), f"GPUs must be a positive whole number, at most {MAX_JOB_GPUS:,}")
        if "duration_s" in raw.columns:
            work = numeric("duration_s")
        elif "work_gpu_h" in raw.columns:
            work = numeric("work_gpu_h") * 3600.0 / gpus
        elif "flops" in raw.columns and "mfu" in raw.columns:
            mfu = numeric("mfu")
            bad_mfu = (mfu <= 0) | (mfu > 1)
            if bad_mfu.any():
                raise fail("mfu", _bad_rows(mfu, ~bad_mfu), "MFU must be in (0, 1]")
            work = numeric("flops") / (gpus * reference_peak_tflops * 1e12 * mfu)
        else:
            raise ScenarioError.single(
                file, field_path, "the trace needs 'duration_s', 'work_gpu_h' or 'flops' with 'mfu' columns"
            )
        bad_work = (work <= 0) | ~np.isfinite(work.to_numpy(dtype=float))
        if bad_work.any():
            raise fail("work", _bad_rows(work, ~bad_work), "job work/duration must be positive")
        priority = (
            numeric("priority").astype(np.int64)
            if "priority" in raw.columns
            else pd.Series(self.priority, index=raw.index)
        )
        tenant = raw["tenant"].astype(str) if "tenant" in raw.columns else pd.Series(self.name, index=raw.index)

        order = np.argsort(submit.to_numpy(), kind="stable")
        submit_arr = submit.to_numpy()[order]
        if len(submit_arr) and self.align == "first_job":
            submit_arr = submit_arr - submit_arr[0]
        elif len(submit_arr) and submit_arr[0] < 0:
            line = int(submit.index[order[0]])
            raise ScenarioError.single(
                file, f"{field_path} (submit)", "job submitted before the scenario start", line=line
            )
        submit_arr = submit_arr * self.time_scale
        keep = submit_arr < horizon_s
        return JobBatch(
            submit_s=submit_arr[keep],
            gpus=gpus.to_numpy()[order][keep].astype(np.int64),
            work_s=work.to_numpy()[order][keep],
            priority=priority.to_numpy()[order][keep].astype(np.int64),
            tenant=[str(t) for t in tenant.to_numpy()[order][keep]],
            source=self.name,
            gpu_load=self.gpu_load if self.gpu_load is not None else default_load,
            clusters=tuple(self.clusters) if self.clusters else None,
            extra={"line": np.asarray(submit.index, dtype=np.int64)[order][keep]},
        )
