"""What a request-trace reader returns (:mod:`.trace`, :mod:`.trace_jsonl`): checked columns of one file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BlockHashes", "TraceRows"]

BlockHashes = tuple[tuple[int, ...], ...]
"""Per request, its prompt's prefix block hashes in order (block ``k`` covers tokens ``[k B, (k + 1) B)``)."""


@dataclass(frozen=True)
class TraceRows:
    """One trace file, checked: arrival s from its first request, prompt and output tokens, and (when asked
    for and present) each request's block hashes."""

    times_s: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    hashes: BlockHashes | None = None
