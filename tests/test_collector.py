"""Garbage collection paced to the heap while a run is in progress (sim/collector.py)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from gigafactory_sim.config.loader import load_scenario
from gigafactory_sim.preparation import prepare
from gigafactory_sim.sim import collector
from gigafactory_sim.sim.engine import Simulation

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


class _Cycle:
    """One object of cyclic garbage: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


def _quickstart(progress: Any) -> Simulation:
    return Simulation(prepare(load_scenario(SCENARIOS / "quickstart.yaml", ["horizon=2d"])), progress=progress)


def test_a_run_turns_automatic_collection_off_and_restores_it() -> None:
    seen: list[bool] = []
    sim = _quickstart(lambda now, horizon: seen.append(gc.isenabled()))
    assert gc.isenabled()
    sim.run()
    assert len(seen) > 2 and not any(seen[:-1])  # off at every report tick of the event loop
    assert seen[-1]  # (the final row is written after it)
    assert gc.isenabled()


def test_a_run_leaves_collection_off_if_it_was_off() -> None:
    sim = _quickstart(None)
    gc.disable()
    try:
        sim.run()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_collection_is_restored_when_the_run_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"), collector.paced():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_nested_runs_restore_collection_at_the_outermost_end() -> None:
    with collector.paced():
        with collector.paced():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_pace_keeps_cyclic_garbage_within_the_heap() -> None:
    """Cyclic garbage made three times over the budget: with a pace() after every chunk, CPython's net count
    never goes past the budget by more than a chunk, and at the end little garbage is left; without pace() the
    same garbage would all be waiting."""
    gc.collect()
    chunk = 5_000
    with collector.paced():
        budget = max(collector.MIN_GROWTH, len(gc.get_objects()))
        highest = 0
        for _ in range(3 * budget // chunk):
            for _ in range(chunk):
                _Cycle()
            highest = max(highest, gc.get_count()[0])
            collector.pace()
        left = sum(isinstance(o, _Cycle) for o in gc.get_objects())
    assert highest > budget  # (the garbage did outgrow the budget: pace had to collect)
    assert highest <= budget + 2 * chunk  # (a chunk's worth of other allocations at most)
    assert left <= budget + chunk
    gc.collect()


def test_pace_does_nothing_outside_a_run() -> None:
    gc.disable()
    try:
        gc.collect()
        for _ in range(collector.MIN_GROWTH + 10):
            _Cycle()
        collector.pace()
        assert gc.get_count()[0] > collector.MIN_GROWTH  # nothing collected
    finally:
        gc.enable()
        gc.collect()
