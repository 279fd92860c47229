"""RunningJobs (sim/running.py) keeps exactly the order of a sorted list of (v_finish, idx, job) tuples."""

from __future__ import annotations

import bisect
import random

import pytest

from gigafactory_sim.sim import running
from gigafactory_sim.sim.running import RunningJobs


class _Job:
    """What RunningJobs reads of a job: its row index (and identity)."""

    def __init__(self, idx: int) -> None:
        self.idx = idx


def _check(jobs: RunningJobs, ref: list[tuple[float, int, _Job]]) -> None:
    assert len(jobs) == len(ref)
    assert [(v, i) for v, i, _ in jobs] == [(v, i) for v, i, _ in ref]
    assert all(a[2] is b[2] for a, b in zip(jobs, ref, strict=True))
    if ref:
        assert jobs[0] is ref[0]
        k = len(ref) // 2
        assert jobs[k] is ref[k] and jobs[-1] is ref[-1]


@pytest.mark.parametrize("load", [1, 2, 3, 512])
@pytest.mark.parametrize("seed", range(4))
def test_random_operations_keep_the_order_of_sorted_tuples(
    load: int, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inserts, removals (present and absent), pops from the front, with many equal v_finish (few distinct
    values, so ties run over several blocks when blocks are small) and job indices in no particular order."""
    monkeypatch.setattr(running, "LOAD", load)
    rng = random.Random(seed)
    values = [float(rng.randrange(12)) for _ in range(6)] + [rng.random() * 12 for _ in range(4)]
    ids = rng.sample(range(10_000), 3_000)
    ref: list[tuple[float, int, _Job]] = []
    jobs = RunningJobs()
    v_now = 0.0
    for step, idx in enumerate(ids):
        job = _Job(idx)
        entry = (v_now + rng.choice(values), idx, job)
        first = jobs.add(entry)
        bisect.insort(ref, entry, key=lambda e: (e[0], e[1]))
        assert first == (ref[0] is entry)
        r = rng.random()
        if r < 0.15 and ref:  # a job leaves early (failure, preemption)
            gone = ref.pop(rng.randrange(len(ref)))
            assert jobs.remove(gone[0], gone[2])
            assert not jobs.remove(gone[0], gone[2])  # (not there any more)
        elif r < 0.45:  # the clock moves on: the jobs due leave in order
            v_now += rng.random() * 2.0
            n = bisect.bisect_right([e[0] for e in ref], v_now)
            assert [e[2] for e in jobs.pop_through(v_now)] == [e[2] for e in ref[:n]]
            del ref[:n]
        if step % 97 == 0:
            _check(jobs, ref)
    _check(jobs, ref)
    assert [e[2] for e in jobs.pop_through(float("inf"))] == [e[2] for e in ref]
    assert len(jobs) == 0 and not jobs.remove(0.0, _Job(1))


def test_built_from_entries_in_any_order() -> None:
    rng = random.Random(7)
    entries = [(float(rng.randrange(5)), i, _Job(i)) for i in rng.sample(range(5_000), 2_000)]
    _check(RunningJobs(entries), sorted(entries, key=lambda e: (e[0], e[1])))


def test_index_out_of_range() -> None:
    jobs = RunningJobs([(1.0, 1, _Job(1))])
    with pytest.raises(IndexError):
        jobs[1]
