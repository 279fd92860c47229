"""Request traces for inference services: a generic CSV and adapters for the Azure LLM inference trace 2023 and
the Mooncake traces (with prefix block hashes).

Generic columns (header required): ``arrival_s`` (seconds, any origin) *or* ``arrival_time`` (ISO 8601),
``prompt_tokens``, ``output_tokens``, and optionally ``hash_ids`` (the prompt's prefix block hashes, integers
separated by spaces). Azure (``format: azure``): ``TIMESTAMP, ContextTokens, GeneratedTokens`` as published in
``Azure/AzurePublicDataset`` (Patel et al., "Splitwise", ISCA 2024; CC BY 4.0). Mooncake (``format:
mooncake``): JSON lines ``{timestamp (ms), input_length, output_length, hash_ids}`` as published in
``kvcache-ai/Mooncake`` (Qin et al., FAST 2025), optionally gzip-compressed (``.gz``); reading is in
:mod:`.trace_jsonl`.

Arrival times must not decrease and token counts must not be negative; a bad row is reported with its file,
line
and column (exit code 2), never dropped. The first request arrives at the scenario start; ``rate_scale``
divides
inter-arrival times; ``loop`` repeats the trace (period = span + mean gap) until the horizon.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.inference.demand import TraceDemand
from gigafactory_sim.inference.trace_jsonl import read_mooncake
from gigafactory_sim.inference.trace_rows import BlockHashes, TraceRows
from gigafactory_sim.workload.traces import resolve_data_path

__all__ = ["BlockHashes", "RequestTrace", "TraceRows", "load_request_trace"]

HASH_COLUMN = "hash_ids"

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
    base_hashes: BlockHashes | None = None  # per request of one pass, when the trace carries them

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

    @property
    def n_requests(self) -> float:
        """Requests before the horizon (a float: a looped trace at a huge rate may hold more than an index)."""
        return self._count_before(self.horizon_s)

    def __len__(self) -> int:
        return int(self.n_requests)

    def expected_requests(self, t0_s: float, t1_s: float) -> float:
        return self._count_before(t1_s) - self._count_before(t0_s)

    def materialise(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(arrival s, prompt tokens, output tokens) of every request before the horizon."""
        copies = int(np.ceil(self.horizon_s / self.period_s)) if self.loop else 1
        times = (self.base_s[None, :] + self.period_s * np.arange(copies)[:, None]).ravel()
        keep = times < self.horizon_s
        return times[keep], np.tile(self.base_prompt, copies)[keep], np.tile(self.base_output, copies)[keep]

    def materialise_hashes(self) -> list[tuple[int, ...]]:
        """Block hashes of every request :meth:`materialise` lays out, in the same order. Each repetition of a
        looped trace is new traffic: its ids are offset past the pass's largest, so passes share no block."""
        if self.base_hashes is None:
            raise ValueError("the trace carries no block hashes")
        n = len(self)
        if n <= len(self.base_hashes):
            return list(self.base_hashes[:n])
        offset = 1 + max((max(h) for h in self.base_hashes if h), default=-1)
        out: list[tuple[int, ...]] = []
        k = 0
        while len(out) < n:
            shift = k * offset
            out.extend(tuple(x + shift for x in h) for h in self.base_hashes)
            k += 1
        return out[:n]


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
    rows = read_trace_rows(path, fmt, file, field_path, max_rows)
    return rows.times_s, rows.prompt, rows.output


def parse_hash_ids(cells: Sequence[str], lines: Sequence[int], file: str, field_path: str) -> BlockHashes:
    """``hash_ids`` cells (integers separated by spaces, possibly none) as tuples; the first bad cell is an
    error naming its line and the offending text."""
    out: list[tuple[int, ...]] = []
    for cell, line in zip(cells, lines, strict=True):
        try:
            ids = tuple(int(x) for x in cell.replace(",", " ").split())
        except ValueError:
            bad = next(x for x in cell.replace(",", " ").split() if not _is_int(x))
            raise _fail(file, field_path, HASH_COLUMN, [line], f"not an integer block hash ({bad!r})") from None
        out.append(ids)
    return tuple(out)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def read_trace_rows(
    path: Path, fmt: str, file: str, field_path: str, max_rows: int | None = None, hashes: bool = False
) -> TraceRows:
    """Parse and check one trace file; with ``hashes``, its ``hash_ids`` too (an error if it has none)."""
    if fmt == "mooncake":
        return read_mooncake(path, file, field_path, max_rows, hashes)
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
    block_hashes: BlockHashes | None = None
    if hashes:
        if HASH_COLUMN not in raw.columns:
            raise missing_hashes(file, field_path, f"the {fmt} trace has no {HASH_COLUMN!r} column")
        block_hashes = parse_hash_ids(raw[HASH_COLUMN].tolist(), [int(i) for i in raw.index], file, field_path)
    return TraceRows(times - times[0], prompt, output, block_hashes)


def missing_hashes(file: str, field_path: str, what: str) -> ScenarioError:
    """``prefix_cache.from_trace`` asked for block hashes the trace does not carry."""
    return ScenarioError.single(
        file,
        f"{field_path}.prefix_cache.from_trace",
        f"{what}: from_trace needs a trace with block hashes (format: mooncake, or a generic CSV "
        f"with a {HASH_COLUMN!r} column of integers separated by spaces)",
    )


def load_request_trace(
    demand: TraceDemand, base_dir: Path, horizon_s: float, field_path: str, hashes: bool = False
) -> RequestTrace:
    """Read ``demand``'s file and lay it over ``[0, horizon_s)``: scaled in rate, looped if asked; with
    ``hashes``, keep each request's block hashes (the trace must carry them)."""
    path = resolve_data_path(demand.path, base_dir)
    if not path.is_file():
        raise ScenarioError.single(str(path), f"{field_path}.demand.path", "trace file not found")
    rows = read_trace_rows(path, demand.format, str(path), field_path, demand.max_rows, hashes)
    t, prompt, output = rows.times_s, rows.prompt, rows.output
    t = t / demand.rate_scale
    span = float(t[-1])
    # the period is the span plus one mean gap; a trace whose requests share one instant (or a single request)
    # repeats every second
    gap = span / (len(t) - 1) if len(t) > 1 and span > 0 else 1.0
    return RequestTrace(t, prompt, output, span + gap, demand.loop, horizon_s, rows.hashes)
