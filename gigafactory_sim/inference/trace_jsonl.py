"""The Mooncake trace format (``format: mooncake``): one JSON object a line, optionally gzip-compressed.

Fields as published in ``kvcache-ai/Mooncake`` (``FAST25-release/traces/*.jsonl``; Qin et al., "Mooncake",
FAST 2025): ``timestamp`` (arrival, milliseconds), ``input_length`` (prompt tokens), ``output_length`` (output
tokens), ``hash_ids`` (the prompt's prefix block hashes, one per block of 512 tokens; the same id at the same
place means the same prefix). A bad line is an error naming the file, its line and the field (exit code 2),
never dropped: not JSON, a field missing, not a number, negative, no output token, a hash that is not an
integer, arrivals going backwards.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np

from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.inference.trace_rows import TraceRows

__all__ = ["MOONCAKE_FIELDS", "read_mooncake"]

MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")


def _fail(file: str, field_path: str, name: str, line: int, what: str) -> ScenarioError:
    return ScenarioError.single(file, f"{field_path}.demand (field {name!r})", f"{what} at line {line}", line=line)


def _number(row: dict[str, Any], name: str, line: int, file: str, field_path: str) -> float:
    if name not in row:
        raise _fail(file, field_path, name, line, "missing field")
    value = row[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise _fail(file, field_path, name, line, f"not a number ({value!r})")
    if value < 0:
        raise _fail(file, field_path, name, line, "negative value")
    return float(value)


def _hashes(row: dict[str, Any], line: int, file: str, field_path: str) -> tuple[int, ...]:
    if "hash_ids" not in row:
        raise _fail(file, field_path, "hash_ids", line, "missing field")
    ids = row["hash_ids"]
    if not isinstance(ids, list):
        raise _fail(file, field_path, "hash_ids", line, f"not a list of integers ({ids!r})")
    for x in ids:
        if isinstance(x, bool) or not isinstance(x, int):
            raise _fail(file, field_path, "hash_ids", line, f"not an integer block hash ({x!r})")
    return tuple(ids)


def _lines(path: Path, file: str, field_path: str) -> list[str]:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as f:
                return f.read().splitlines()
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ScenarioError.single(file, f"{field_path}.demand.path", f"cannot read the trace: {exc}") from None


def read_mooncake(
    path: Path, file: str, field_path: str, max_rows: int | None = None, hashes: bool = False
) -> TraceRows:
    """Parse and check a Mooncake trace: arrivals in s from its first request, tokens, and (with ``hashes``)
    each request's block hashes. Blank lines are skipped; line numbers count every line of the file."""
    times: list[float] = []
    prompt: list[float] = []
    output: list[float] = []
    block_hashes: list[tuple[int, ...]] = []
    for line, text in enumerate(_lines(path, file, field_path), start=1):
        if not text.strip():
            continue
        if max_rows is not None and len(times) >= max_rows:
            break
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail(file, field_path, "line", line, f"not a JSON object ({exc.msg})") from None
        if not isinstance(row, dict):
            raise _fail(file, field_path, "line", line, "not a JSON object")
        t = _number(row, "timestamp", line, file, field_path) / 1000.0
        if times and t < times[-1]:
            raise _fail(
                file, field_path, "timestamp", line, "arrival time goes backwards (the trace must be sorted by arrival)"
            )
        times.append(t)
        prompt.append(_number(row, "input_length", line, file, field_path))
        out = _number(row, "output_length", line, file, field_path)
        if out < 1:
            raise _fail(file, field_path, "output_length", line, "a request needs >= 1 output token")
        output.append(out)
        if hashes:
            block_hashes.append(_hashes(row, line, file, field_path))
    if not times:
        raise ScenarioError.single(file, f"{field_path}.demand.path", "the trace has no rows")
    t_s = np.array(times)
    return TraceRows(t_s - t_s[0], np.array(prompt), np.array(output), tuple(block_hashes) if hashes else None)
