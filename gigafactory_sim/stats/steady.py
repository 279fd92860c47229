"""Steady-state figures of a finished run: a warm-up cut (fixed, or MSER-5), the main KPIs over the steady span,
and batch-means confidence intervals.

Pure functions of the run's tables, computed after the run (no SimPy). Each time-series row is the exact mean of
piecewise-constant power and counts over its report interval, so a span made of whole rows gives exact figures:
a fixed warm-up is rounded to the report-interval grid, and MSER-5 cuts at a row boundary by construction.

References (not in ../shared/REFERENCES.md, cited here where used):
- K. P. White Jr., "An effective truncation heuristic for bias reduction in simulation output", Simulation 69(6),
  1997 (MSER); K. P. White Jr., M. J. Cobb, S. C. Spratt, "A comparison of five steady-state truncation
  heuristics for simulation", WSC 2000 (MSER-5: the rule applied to means of batches of 5 observations).
- Batch means: A. M. Law, "Simulation Modeling and Analysis", 5th ed., 2015, sec. 9.5.3 (non-overlapping batches,
  Student-t interval on the batch means, lag-1 correlation of the batch means as the check of independence).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gigafactory_sim.workload.warm_start import WARM_START_SOURCE

if TYPE_CHECKING:
    from gigafactory_sim.config.scenario import Scenario

__all__ = ["MSER_BATCH_ROWS", "batch_means", "mser5", "statistics_section"]

MSER_BATCH_ROWS = 5
J_PER_MWH = 3.6e9
LAG1_WARNING = 0.5  # above this the batches are too short to be treated as independent (Law 2015)


def mser5(series: np.ndarray, batch_rows: int = MSER_BATCH_ROWS) -> dict[str, Any]:
    """MSER-5 truncation point of ``series`` (one value per report interval).

    The series is cut into ``b = len // batch_rows`` non-overlapping batches (a remainder at the end is left out of
    the choice) with means ``Y_j``. For each ``d`` in ``0 .. b // 2`` (the first half),
    ``MSER(d) = sum_{j >= d} (Y_j - mean(Y_d..))^2 / (b - d)^2``; the warm-up is the ``d`` that minimises it, in
    batches (``rows = d * batch_rows``). A minimum at the half-way limit means the run never settled
    (``at_limit``): run longer or start warm.
    """
    y = np.asarray(series, dtype=float)
    b = len(y) // batch_rows
    if b < 2:
        return dict(rows=0, batches=b, truncated_batches=0, statistic=None, at_limit=False)
    means = y[: b * batch_rows].reshape(b, batch_rows).mean(axis=1)
    stats = np.empty(b // 2 + 1)
    for d in range(b // 2 + 1):
        tail = means[d:]
        stats[d] = float(np.sum((tail - tail.mean()) ** 2)) / len(tail) ** 2
    d_best = int(np.argmin(stats))  # first minimum: the shortest cut among equals
    return dict(
        rows=d_best * batch_rows,
        batches=b,
        truncated_batches=d_best,
        statistic=float(stats[d_best]),
        at_limit=d_best == b // 2 and b // 2 > 0,
    )


def batch_means(
    values: np.ndarray, weights_s: np.ndarray, n_batches: int, *, fraction: bool = False, nonnegative: bool = False
) -> dict[str, float | int | None]:
    """Mean and 95 % Student-t interval from ``n_batches`` non-overlapping batches of whole rows.

    ``values`` are interval means with durations ``weights_s``; the batches have equal row counts (rows left
    over are dropped from the start of the series, just after the warm-up) and each batch mean is time-weighted.
    ``lag1_autocorr`` is the lag-1 correlation of the batch means (near 0: the batches are long enough to be
    treated as independent). ``fraction``: the interval is clipped to [0, 1]; ``nonnegative``: to [0, inf) (counts,
    powers).
    """
    from gigafactory_sim.analysis.stats import student_t_quantile  # lazy: analysis imports the API

    v = np.asarray(values, dtype=float)
    w = np.asarray(weights_s, dtype=float)
    k = min(n_batches, len(v))
    if k < 2:
        mean = float(np.average(v, weights=w)) if len(v) and w.sum() > 0 else None
        return {"mean": mean, "ci95_low": None, "ci95_high": None, "batches": k, "lag1_autocorr": None}
    m = len(v) // k
    skip = len(v) - k * m
    vb = v[skip:].reshape(k, m)
    wb = w[skip:].reshape(k, m)
    y = (vb * wb).sum(axis=1) / wb.sum(axis=1)
    mean = float(y.mean())
    half = student_t_quantile(0.975, k - 1) * float(y.std(ddof=1)) / np.sqrt(k)
    low, high = mean - half, mean + half
    if fraction:
        low, high = max(low, 0.0), min(high, 1.0)
    elif nonnegative:
        low = max(low, 0.0)
    dev = y - mean
    denom = float(np.sum(dev**2))
    lag1 = float(np.sum(dev[1:] * dev[:-1]) / denom) if denom > 0 else None
    return {"mean": mean, "ci95_low": low, "ci95_high": high, "batches": k, "lag1_autocorr": lag1}


def _percentiles(x: np.ndarray) -> dict[str, float | None]:
    """The summary's ``wait_s`` figures (same definition as the headline ``wait_s``)."""
    if len(x) == 0:
        return {"mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"mean": float(x.mean()), "p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(x.max())}


def _gpu_series(ts: pd.DataFrame, cluster: str) -> tuple[np.ndarray, np.ndarray]:
    """Allocated and busy GPUs of ``cluster`` per row, as the summary counts them: GPUs held by training jobs or
    inference replicas; busy leaves out stranded GPUs and GPUs stalled in checkpoints or restarts."""
    infer = ts[f"infer_gpus.{cluster}"].to_numpy() if f"infer_gpus.{cluster}" in ts else 0.0
    ckpt = ts[f"ckpt_gpus.{cluster}"].to_numpy() if f"ckpt_gpus.{cluster}" in ts else 0.0
    allocated = ts[f"allocated_gpus.{cluster}"].to_numpy() + infer
    busy = ts[f"busy_gpus.{cluster}"].to_numpy() + infer - ckpt
    return np.asarray(allocated, dtype=float), np.asarray(busy, dtype=float)


def _warmup_rows(scenario: Scenario, t_start: np.ndarray, allocated: np.ndarray) -> dict[str, Any]:
    """Where the steady span starts: the row index, the rule, and what the rule saw."""
    assert scenario.statistics is not None
    warmup = scenario.statistics.warmup
    if warmup == "auto":
        choice = mser5(allocated)
        rows = int(choice["rows"])
        out: dict[str, Any] = {
            "rows": rows,
            "warmup_rule": "mser5",
            "mser5": {"batch_intervals": MSER_BATCH_ROWS, **choice},
        }
        if choice["at_limit"]:
            out["note"] = (
                "MSER-5 chose the end of the first half: the series has not settled; "
                "run longer or use initial_state: steady"
            )
        return out
    requested = float(warmup)
    rows = int(np.argmin(np.abs(t_start - requested)))  # nearest row boundary (ties: the earlier one)
    out = {"rows": rows, "warmup_rule": "none" if rows == 0 and requested == 0 else "fixed"}
    if requested > 0:
        out["warmup_requested_s"] = requested
        if float(t_start[rows]) != requested:
            out["note"] = (
                f"warm-up {requested:g} s rounded to the report-interval grid: {float(t_start[rows]):g} s, "
                "so every figure stays an exact interval mean"
            )
    return out


def statistics_section(scenario: Scenario, timeseries: pd.DataFrame, jobs: pd.DataFrame) -> dict[str, Any] | None:
    """``summary["statistics"]``: the warm-up cut, the steady span and the main KPIs over it, and batch means.

    None when the scenario has no ``statistics:`` section (the summary is then exactly as without this module).
    """
    cfg = scenario.statistics
    if cfg is None or len(timeseries) == 0:
        return None
    t_start = timeseries["t_start_s"].to_numpy(dtype=float)
    t_end = timeseries["t_end_s"].to_numpy(dtype=float)
    names = [c.name for c in scenario.facility.clusters]
    gpus = {c.name: c.gpus for c in scenario.facility.clusters}
    gpus_total = sum(gpus.values())
    per_cluster = {c: _gpu_series(timeseries, c) for c in names}
    allocated = np.sum([a for a, _ in per_cluster.values()], axis=0)
    busy = np.sum([b for _, b in per_cluster.values()], axis=0)

    cut = _warmup_rows(scenario, t_start, allocated)
    r = int(cut.pop("rows"))
    span = slice(r, None)
    dt = (t_end - t_start)[span]
    span_start, span_end = float(t_start[r]), float(t_end[-1])
    duration = float(dt.sum())

    def mean(x: np.ndarray | float) -> float:
        return float(np.sum(np.broadcast_to(x, t_start.shape)[span] * dt) / duration)

    it_mw = timeseries["it_power_mw"].to_numpy(dtype=float)
    fac_mw = timeseries["facility_power_mw"].to_numpy(dtype=float)
    steady: dict[str, Any] = {
        "duration_s": duration,
        "utilisation": {
            "allocated_fraction": mean(allocated) / gpus_total,
            "busy_fraction": mean(busy) / gpus_total,
            "allocated_gpu_h": mean(allocated) * duration / 3600.0,
            "busy_gpu_h": mean(busy) * duration / 3600.0,
        },
        "clusters": {
            c: {"allocated_fraction": mean(a) / gpus[c], "busy_fraction": mean(b) / gpus[c]}
            for c, (a, b) in per_cluster.items()
        },
        "energy": {
            "it_mwh": mean(it_mw) * duration * 1e6 / J_PER_MWH,
            "facility_mwh": mean(fac_mw) * duration * 1e6 / J_PER_MWH,
        },
        "power": {
            "mean_it_mw": mean(it_mw),
            "mean_facility_mw": mean(fac_mw),
            "peak_interval_it_mw": float(it_mw[span].max()),
            "peak_interval_facility_mw": float(fac_mw[span].max()),
        },
        "jobs": _job_figures(jobs, span_start, span_end),
    }
    steady["jobs"]["mean_queued"] = mean(timeseries["queued_jobs_mean"].to_numpy(dtype=float))
    steady["jobs"]["mean_running"] = mean(timeseries["running_jobs_mean"].to_numpy(dtype=float))
    steady["wait_s"] = steady["jobs"].pop("wait_s")
    steady["sources"] = _source_figures(jobs, [t.name for t in scenario.workload.training], span_start, span_end)

    n_rows = len(t_start) - r
    k = min(cfg.batches, n_rows)
    m = n_rows // k
    skip = n_rows - k * m
    completions = _completions_per_row(jobs, t_start, t_end)
    series: dict[str, tuple[np.ndarray, bool]] = {
        "allocated_fraction": (allocated / gpus_total, True),
        "busy_fraction": (busy / gpus_total, True),
        "mean_it_mw": (it_mw, False),
        "mean_facility_mw": (fac_mw, False),
        "mean_queued": (timeseries["queued_jobs_mean"].to_numpy(dtype=float), False),
        "mean_running": (timeseries["running_jobs_mean"].to_numpy(dtype=float), False),
        "completed_per_h": (completions / ((t_end - t_start) / 3600.0), False),
    }
    section: dict[str, Any] = {
        "warmup_s": span_start,
        "warmup_rule": cut.pop("warmup_rule"),
        **cut,
        "span_s": [span_start, span_end],
        "steady": steady,
        "batching": {
            "batches": k,
            "batch_intervals": m,
            "batch_s": float(np.median((t_end - t_start)[span])) * m,
            "span_s": [float(t_start[r + skip]), span_end],
            "dropped_intervals": skip,
        },
        "batch_means": {
            name: batch_means(x[span], dt, cfg.batches, fraction=frac, nonnegative=True)
            for name, (x, frac) in series.items()
        },
    }
    worst = max(
        (abs(v["lag1_autocorr"]) for v in section["batch_means"].values() if v["lag1_autocorr"] is not None),
        default=0.0,
    )
    if worst > LAG1_WARNING:
        section["batching"]["note"] = (
            f"batch means are correlated (|lag-1| up to {worst:.2f}): the intervals are "
            "too narrow; run longer or use fewer, longer batches"
        )
    if scenario.initial_state == "steady":
        section["warm_start_jobs"] = int((jobs["source"] == WARM_START_SOURCE).sum())
    return section


def _job_figures(jobs: pd.DataFrame, start_s: float, end_s: float) -> dict[str, Any]:
    """Jobs submitted, started and completed in ``[start_s, end_s]``, and the waits of those submitted in it that
    started. Warm-start jobs (pre-filled at t = 0) are not arrivals: they count as completed, nothing else."""
    arrival = (jobs["source"] != WARM_START_SOURCE).to_numpy()
    submit = jobs["submit_s"].to_numpy(dtype=float)
    started_at = jobs["start_s"].to_numpy(dtype=float)
    ended_at = jobs["end_s"].to_numpy(dtype=float)
    completed = (jobs["state"] == "completed").to_numpy()
    submitted = arrival & (submit >= start_s) & (submit < end_s)
    with np.errstate(invalid="ignore"):
        started = arrival & (started_at >= start_s) & (started_at <= end_s)
        done = completed & (ended_at >= start_s) & (ended_at <= end_s)
    waited = submitted & ~np.isnan(started_at)
    return {
        "submitted": int(submitted.sum()),
        "started": int(started.sum()),
        "completed": int(done.sum()),
        "waited_fraction": _waited_fraction(submitted, started_at - submit),
        "wait_s": _percentiles((started_at - submit)[waited]),
    }


def _source_figures(jobs: pd.DataFrame, names: list[str], start_s: float, end_s: float) -> dict[str, dict[str, Any]]:
    """``steady.sources``: :func:`_job_figures` of each source's jobs, the scenario's ``names`` first (there even
    without jobs), as the summary's ``sources``. The warm-start jobs are their own source (they count as completed
    only), so the counts add up to ``steady.jobs``."""
    present = set(jobs["source"].tolist()) if len(jobs) else set()
    names = [*names, *sorted(str(n) for n in present - set(names))]
    return {n: _job_figures(jobs[(jobs["source"] == n).to_numpy()], start_s, end_s) for n in names}


def _waited_fraction(submitted: np.ndarray, wait_s: np.ndarray) -> float | None:
    """The share of the jobs submitted in the span that waited: started after their submission, or not started by
    the end (the M/M/c probability of waiting, Erlang C, when every job fits one GPU)."""
    n = int(submitted.sum())
    if n == 0:
        return None
    with np.errstate(invalid="ignore"):
        waited = np.isnan(wait_s[submitted]) | (wait_s[submitted] > 1e-9)
    return float(waited.sum()) / n


def _completions_per_row(jobs: pd.DataFrame, t_start: np.ndarray, t_end: np.ndarray) -> np.ndarray:
    """Jobs completed in each row ``[t_start, t_end)`` (the last row also counts completions at the horizon)."""
    ended = jobs.loc[jobs["state"] == "completed", "end_s"].to_numpy(dtype=float)
    edges = np.concatenate([t_start[:1], t_end])
    counts, _ = np.histogram(np.clip(ended, edges[0], edges[-1]), bins=edges)
    return counts.astype(float)
