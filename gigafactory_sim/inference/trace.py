"""Request traces for inference services: a generic CSV and an adapter for the Azure LLM inference trace 2023.

Generic columns (header required): ``arrival_s`` (seconds, any origin) *or* ``arrival_time`` (ISO 8601),
``prompt_tokens``, ``output_tokens``. Azure (``format: azure``): ``TIMESTAMP, ContextTokens, GeneratedTokens``
as published in ``Azure/AzurePublicDataset`` (Patel et al., "Splitwise", ISCA 2024; CC BY 4.0).

Arrival times must not decrease and token counts must not be negative; a bad row is reported with its file,
line
and column (exit code 2), never dropped. The first request arrives at the scenario start; ``rate_scale``
divides
inter-arrival times; ``loop`` repeats the trace (period = span + mean gap) until the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.inference.demand import TraceDemand
from gigafactory_sim.workload.traces import resolve_data_path

__all__ = ["RequestTrace", "load_request_trace"]

COLUMNS = {
    "azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
    "generic": ("arrival", "prompt_tokens", "output_tokens"),
}


@dataclass(frozen=True)
class RequestTrace:
    """One pass of a trace (times from its first request, already rate-scaled), repeated every ``period_s`` if
    ``loop``, cut at ``horizon_s``. Counts are computed by arithmetic, so a long looped horizon costs nothing;
    :meth:`materialise` lays out every request (for the discrete model)."""

    base_s: np.ndarray
    base_prompt: np.ndarray
    base_output: np.ndarray
    period_s: float
    loop: bool
    horizon_s: float

    def _count_before(self, t_s: float) -> float:
        t = min(max(t_s, 0.0), self.horizon_s)
        if not self.loop:
            return float(np.searchsorted(self.base_s, t, side="left"))
        k, rest = divmod(t, self.period_s)
        return float(k * len(self.base_s) + np.searchsorted(self.base_s, rest, side="left"))

    def counts_between(self, edges_s: np.ndarray) -> np.ndarray:
        """Requests in each ``[edges[i], edges[i + 1])`` (vectorised :meth:`expected_requests`)."""
        t = np.clip(np.asarray(edges_s, dtype=float), 0.0, self.horizon_s)
        if not self.loop:
            before = np.searchsorted(self.base_s, t, side="left").astype(float)
        else:
            k, rest = np.divmod(t, self.period_s)
            before = k * len(self.base_s) + np.searchsorted(self.base_s, rest, side="left")
        return np.diff(before)

    def __len__(self) -> int:
        return int(self._count_before(self.horizon_s))

    def expected_requests(self, t0_s: float, t1_s: float) -> float:
        return self._count_before(t1_s) - self._count_before(t0_s)

    def materialise(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(arrival s, prompt tokens, output tokens) of every request before the horizon."""
        copies = int(np.ceil(self.horizon_s / self.period_s)) if self.loop else 1
        times = (self.base_s[None, :] + self.period_s * np.arange(copies)[:, None]).ravel()
        keep = times < self.horizon_s
        return times[keep], np.tile(self.base_prompt, copies)[keep], np.tile(self.base_output, copies)[keep]


def _fail(file: str, field_path: str, column: str, lines: list[int], what: str) -> ScenarioError:
    shown = ", ".join(str(x) for x in lines[:5])
    return ScenarioError.single(
        file,
        f"{field_path}.demand (column {column!r})",
        f"{what} at line(s) {shown}",
        line=lines[0] if lines else None,
    )


def _numeric(raw: pd.DataFrame, column: str, file: str, field_path: str) -> np.ndarray:
    values = pd.to_numeric(raw[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        raise _fail(file, field_path, column, [int(i) for i in raw.index[bad]], "not a number")
    neg = values < 0
    if neg.any():
        raise _fail(file, field_path, column, [int(i) for i in raw.index[neg]], "negative value")
    return values


def read_trace_file(
    path: Path, fmt: str, file: str, field_path: str, max_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse and check one trace file: (arrival s from its first request, prompt tokens, output tokens)."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=max_rows)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, OSError) as exc:
        raise ScenarioError.single(file, f"{field_path}.demand.path", f"cannot parse CSV: {exc}") from None
    raw.index = raw.index + 2  # file line numbers (header is line 1)
    time_col, prompt_col, output_col = COLUMNS[fmt]
    if fmt == "generic":
        time_col = "arrival_s" if "arrival_s" in raw.columns else "arrival_time"
    missing = [c for c in (time_col, prompt_col, output_col) if c not in raw.columns]
    if missing:
        raise ScenarioError.single(
            file,
            f"{field_path}.demand",
            f"the {fmt} trace needs column(s) {', '.join(missing)}; found {', '.join(map(str, raw.columns))}",
        )
    if len(raw) == 0:
        raise ScenarioError.single(file, f"{field_path}.demand.path", "the trace has no rows")
    if time_col == "arrival_s":
        times = pd.to_numeric(raw[time_col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(times)
        if bad.any():
            raise _fail(file, field_path, time_col, [int(i) for i in raw.index[bad]], "not a number")
        if (times < 0).any():
            raise _fail(file, field_path, time_col, [int(i) for i in raw.index[times < 0]], "negative value")
    else:
        parsed = pd.to_datetime(raw[time_col], errors="coerce", utc=True)
        bad = parsed.isna().to_numpy()
        if bad.any():
            raise _fail(file, field_path, time_col, [int(i) for i in raw.index[bad]], "not a timestamp")
        times = (parsed - parsed.iloc[0]).dt.total_seconds().to_numpy(dtype=float)
    back = np.flatnonzero(np.diff(times) < 0) + 1
    if len(back):
        raise _fail(
            file,
            field_path,
            time_col,
            [int(raw.index[int(i)]) for i in back],
            "arrival time goes backwards (the trace must be sorted by arrival)",
        )
    prompt = _numeric(raw, prompt_col, file, field_path)
    output = _numeric(raw, output_col, file, field_path)
    zero = output < 1
    if zero.any():
        raise _fail(
            file,
            field_path,
            output_col,
            [int(i) for i in raw.index[zero]],
            "a request needs >= 1 output token",
        )
    return times - times[0], prompt, output


def load_request_trace(demand: TraceDemand, base_dir: Path, horizon_s: float, field_path: str) -> RequestTrace:
    """Read ``demand``'s file and lay it over ``[0, horizon_s)``: scaled in rate, looped if asked."""
    path = resolve_data_path(demand.path, base_dir)
    if not path.is_file():
        raise ScenarioError.single(str(path), f"{field_path}.demand.path", "trace file not found")
    t, prompt, output = read_trace_file(path, demand.format, str(path), field_path, demand.max_rows)
    t = t / demand.rate_scale
    span = float(t[-1])
    # the period is the span plus one mean gap; a trace whose requests share one instant (or a single request)
    # repeats every second
    gap = span / (len(t) - 1) if len(t) > 1 and span > 0 else 1.0
    return RequestTrace(t, prompt, output, span + gap, demand.loop, horizon_s)
