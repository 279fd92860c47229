"""The event loop's lighter pieces against what they replace: a wake-up (``call_later``, a :class:`Timer`) orders and
times exactly as a SimPy timeout, the engine's :class:`Environment` dropping withdrawn wake-ups changes no order and
no result, and a speed group's one-due completion pops what the general walk pops."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
import simpy

from gigafactory_sim.sim import running as running_module
from gigafactory_sim.sim import state as state_module
from gigafactory_sim.sim import timer as timer_module
from gigafactory_sim.sim.running import RunningJobs
from gigafactory_sim.sim.state import Job, SpeedGroup
from gigafactory_sim.sim.timer import Environment, Timer, call_later


def test_wakes_and_timeouts_interleave_in_creation_order_at_the_same_times() -> None:
    rng = random.Random(3)
    delays = [rng.choice([0.0, 0.1, 0.3, 1.0 / 3.0, 7.0, 1e-12]) for _ in range(400)]
    env = simpy.Environment()
    fired: list[tuple[int, float]] = []

    def schedule(k: int) -> None:
        def cb(_e: simpy.Event, k: int = k) -> None:
            fired.append((k, env.now))
            if k < 200:  # half of them schedule more from inside a callback, as the engine does
                schedule(k + 400)

        if k % 2:
            call_later(env, delays[k % 400], cb)
        else:
            env.timeout(delays[k % 400]).callbacks.append(cb)

    for k in range(400):
        schedule(k)
    env.run()
    reference_env = simpy.Environment()
    reference: list[tuple[int, float]] = []

    def schedule_ref(k: int) -> None:
        def cb(_e: simpy.Event, k: int = k) -> None:
            reference.append((k, reference_env.now))
            if k < 200:
                schedule_ref(k + 400)

        reference_env.timeout(delays[k % 400]).callbacks.append(cb)

    for k in range(400):
        schedule_ref(k)
    reference_env.run()
    assert fired == reference  # the same order and the very same times (now + delay)
    assert len(fired) == 600


def test_a_wake_is_a_processed_ok_event_after_it_fires() -> None:
    env = simpy.Environment()
    seen: list[simpy.Event] = []
    call_later(env, 2.5, seen.append)
    env.run()
    assert env.now == 2.5 and len(seen) == 1
    event = seen[0]
    assert event.processed and event.ok and event.value is None


def test_a_re_armed_timer_fires_once_at_its_latest_time() -> None:
    env = simpy.Environment()
    times: list[float] = []
    timer = Timer(env, lambda: times.append(env.now))
    timer.arm(5.0)
    timer.arm(2.0)
    env.run(until=1.0)
    timer.arm(3.0)  # at 1.0: due at 4.0
    env.run()
    assert times == [4.0]
    timer.arm(1.0)
    timer.cancel()
    env.run()
    assert times == [4.0] and not timer.armed


def test_runs_with_withdrawn_wake_ups_dropped_often_equal_runs_without(monkeypatch: pytest.MonkeyPatch) -> None:
    """Capped runs (GPU limits re-solved at most passes, so the timers of every speed group and checkpoint clock
    are re-armed at each) and a federation (its links' timers): dropping withdrawn wake-ups whenever they are
    more than half of the heap gives the results of a plain SimPy environment, which keeps them all."""
    from gigafactory_sim.api import build, execute, prepare_any
    from gigafactory_sim.config.loader import load_scenario

    root = Path(__file__).resolve().parents[1] / "scenarios"
    small = ["horizon=2d", "facility.clusters.0.nodes=2100", "facility.clusters.1.nodes=1500"]
    cases = (
        ("power-capped.yaml", [*small, "energy.power_cap_mw.base_mw=28", "energy.power_cap_mw.windows.0.mw=24"]),
        ("carbon-aware.yaml", [*small, "energy.budgets.0.t_co2=900"]),
        ("eu-federation.yaml", ["horizon=2d"]),
    )
    for name, overrides in cases:
        scenario = load_scenario(root / name, [*overrides, "report.interval=1h"])
        with monkeypatch.context() as m:
            m.setattr(timer_module, "_DROP_FROM", 0)
            sim = build(prepare_any(scenario))
            dropped = execute(sim)
            assert isinstance(sim.env, Environment) and sim.env.drops > 0, name
        with monkeypatch.context() as m:
            m.setattr("gigafactory_sim.sim.engine.Environment", simpy.Environment)
            m.setattr("gigafactory_sim.federation.runtime.Environment", simpy.Environment)
            sim = build(prepare_any(scenario))
            kept = execute(sim)
            assert not isinstance(sim.env, Environment), name
        assert dropped.summary == kept.summary, name
        pd.testing.assert_frame_equal(dropped.jobs, kept.jobs)
        pd.testing.assert_frame_equal(dropped.timeseries, kept.timeseries)


def _reference_due(group: SpeedGroup, eps: float = 1e-6) -> list[Job]:
    """The general walk (every entry up to ``v + eps``), as due() was written before its one-due path."""
    limit = group.v + eps
    entries = list(group.running)  # (a plain list of the entries in order, whatever holds them)
    n = 0
    for v_finish, _, _ in entries:
        if v_finish > limit:
            break
        n += 1
    done = [e[2] for e in entries[:n]]
    group.running = entries[n:] if type(group.running) is list else RunningJobs(entries[n:])
    for job in done:
        group.busy_gpus -= job.gpus
    return done


@pytest.mark.parametrize("sorted_from", [state_module.SORTED_FROM, 3])  # a list, and a RunningJobs past 3 jobs
def test_one_due_completion_pops_what_the_walk_pops(monkeypatch: pytest.MonkeyPatch, sorted_from: int) -> None:
    monkeypatch.setattr(state_module, "SORTED_FROM", sorted_from)
    monkeypatch.setattr(running_module, "LOAD", 2)  # (blocks of 2-4 entries past the switch)
    rng = random.Random(11)
    for trial in range(300):
        fast, slow = SpeedGroup(0, 1.0, 1.0, 700.0), SpeedGroup(0, 1.0, 1.0, 700.0)
        for i in range(rng.randint(0, 8)):
            work = rng.choice([1.0, 2.0, 2.0 + 5e-7, 2.0 + 2e-6, 3.0, rng.random() * 4])  # ties, within eps or not
            gpus = rng.choice([1, 8])
            for g in (fast, slow):
                g.add(Job(i, 0.0, gpus, work, 0, 1.0))
        v = rng.choice([0.0, 1.0, 2.0, 2.0 + 1e-7, 2.5, 10.0])
        fast.v = slow.v = v
        got, want = fast.due(), _reference_due(slow)
        assert [j.idx for j in got] == [j.idx for j in want], trial
        assert [e[1] for e in fast.running] == [e[1] for e in slow.running]
        assert fast.busy_gpus == slow.busy_gpus
