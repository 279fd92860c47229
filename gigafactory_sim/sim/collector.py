"""Cyclic garbage collection paced to the heap while a simulation runs (it never changes a result).

CPython collects its youngest generation of container objects every 700 allocations net of frees, and each
collection reads every object the young ones refer to. A run keeps a few such objects per running job (the job,
its entry in its speed group, its allocation): about 160,000 running jobs at a million GPUs, where those
collections took 5.9 s of a 21 s simulation (the scaling table's million-GPU row), while the engine makes almost
no cyclic garbage (10 objects in that run of a million jobs).

While a run is in progress (:func:`paced`, around the event loop) automatic collection is off, and :func:`pace`,
which the engine calls at every report tick, collects in full once the container objects allocated since the
last collection, net of those freed (CPython's own count), outnumber the ones alive after it, and at least
:data:`MIN_GROWTH`. The tracked heap, garbage included, therefore at most doubles between two collections, and
collecting costs time in proportion to the heap's growth rather than to every 700 allocations. Automatic
collection is restored when the outermost run ends, however it ends. Nothing in the engine has a finaliser or a
weak reference, so when a collection runs cannot change what a run computes.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["MIN_GROWTH", "pace", "paced"]

MIN_GROWTH = 100_000  # container objects allocated (net) before a collection, however small the heap

_lock = threading.Lock()
_depth = 0  # runs in progress in this process (nested or on other threads: the outermost paces)
_was_enabled = True
_budget = 0  # net allocations after which pace() collects


def _next_budget() -> int:
    return max(MIN_GROWTH, len(gc.get_objects()))


@contextmanager
def paced() -> Iterator[None]:
    """Turn automatic collection off for the duration (see the module docstring); :func:`pace` then collects."""
    global _depth, _was_enabled, _budget
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
            _budget = _next_budget()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()


def pace() -> None:
    """Collect in full if the heap has grown by its size since the last collection (a run must be in progress:
    otherwise nothing happens)."""
    global _budget
    if _depth and gc.get_count()[0] > _budget:
        gc.collect()
        _budget = _next_budget()
