"""Unit tables: durations with units, and cluster placement (best fit, whole nodes, fits() = allocate())."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gigafactory_sim.sim.cluster import Allocation, ClusterState
from gigafactory_sim.units import format_duration, parse_duration_s

# --- durations ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("0s", 0.0),
        ("15m", 900.0),
        ("15min", 900.0),
        ("1.5h", 5400.0),
        ("12h", 43200.0),
        ("30d", 2592000.0),
        ("2w", 1209600.0),
        ("0.25d", 21600.0),
        ("1e3s", 1000.0),
        ("2.5E1m", 1500.0),
        ("  7 h ", 25200.0),
        ("3.s", 3.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0.7h", 2520.0),
        ("1.1h", 3960.0),
        ("2.2h", 7920.0),
        ("1.4d", 120960.0),
        ("0.1w", 60480.0),
        ("2.3m", 138.0),
    ],
)
def test_parse_duration_decimal_spellings_are_exact(text: str, seconds: float) -> None:
    """A decimal spelling of a whole number of seconds is that number, not a rounding error off it: '1.1h' is
    3960 s. (A horizon of 3960.0000000000005 s with 6 m report rows gives a last row 4.5e-13 s long.)"""
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize(
    "bad",
    [
        30,
        30.0,
        0,
        True,
        None,
        [1, "h"],  # bare numbers and non-strings: a duration carries its unit
        "30",
        "",
        "h",
        "5x",
        "30 days",
        "1h30m",
        "-5s",
        "+5s",
        "1,5h",
        "h5",
        "5 hh",
        "nan s",
        "infs",
        ".5h",
    ],
)
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration_s(bad)


def test_bare_number_error_suggests_a_unit() -> None:
    with pytest.raises(ValueError, match=r"'30s' or '30h'"):
        parse_duration_s(30)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (1.0, "1s"),
        (59.0, "59s"),
        (60.0, "1m"),
        (90.0, "90s"),
        (900.0, "15m"),
        (5400.0, "90m"),
        (3600.0, "1h"),
        (86400.0, "1d"),
        (3 * 86400.0, "3d"),
        (604800.0, "1w"),
        (1209600.0, "2w"),
        (8 * 86400.0, "8d"),
        (0.5, "0.5s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("seconds", [1.5, 61.25, 3601.0, 100000.5, 1234567.0, 31536000.0 + 1.0, 1e-7])
def test_format_duration_round_trip_examples(seconds: float) -> None:
    """``format_duration`` promises "the shortest exact spelling": parsing it back gives the same seconds."""
    assert parse_duration_s(format_duration(seconds)) == seconds


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_format_duration_round_trip(seconds: float) -> None:
    assert parse_duration_s(format_duration(seconds)) == seconds


# --- cluster placement -------------------------------------------------------------------------------------------
def cluster_with(free: list[int], gpn: int = 8) -> ClusterState:
    """A cluster whose nodes have ``free`` GPUs free (the rest allocated; set directly so each node is known)."""
    st_ = ClusterState("c", 0, len(free), gpn)
    for node, f in enumerate(free):
        if f < gpn:
            st_.node_free[node] = f
            st_.buckets[gpn].discard(node)
            st_.buckets[f].add(node)
            st_.allocated_gpus += gpn - f
            st_.free_gpus -= gpn - f
    check_consistent(st_)
    return st_


def check_consistent(state: ClusterState) -> None:
    gpn = state.gpus_per_node
    assert all(0 <= f <= gpn for f in state.node_free)
    for f, bucket in enumerate(state.buckets):
        for node in bucket:
            assert state.node_up[node] and state.node_free[node] == f
    in_buckets = sorted(n for b in state.buckets for n in b)
    assert in_buckets == [n for n in range(state.nodes) if state.node_up[n]]
    assert state.allocated_gpus == sum(gpn - f for f in state.node_free)
    assert state.free_gpus == sum(f for n, f in enumerate(state.node_free) if state.node_up[n])
    assert 0 <= state.allocated_gpus <= state.total_gpus


@pytest.mark.parametrize(
    ("free", "gpus", "node"),
    [
        ([8, 3, 5], 3, 1),  # the fullest node that fits: exact fit
        ([8, 3, 5], 4, 2),  # 5 free is the tightest that holds 4
        ([8, 3, 5], 6, 0),  # only the empty node holds 6
        ([2, 8, 6, 7], 1, 0),
        ([2, 8, 6, 7], 7, 3),
        ([8, 8, 1], 1, 2),
        ([4, 4, 4], 5, None),  # 12 GPUs free, but no node has 5
    ],
)
def test_best_fit_placement(free: list[int], gpus: int, node: int | None) -> None:
    state = cluster_with(free)
    assert state.fits(gpus) == (node is not None)
    if node is None:
        with pytest.raises(RuntimeError):
            state.allocate(gpus)
        assert state.node_free == free
        return
    alloc = state.allocate(gpus)
    assert alloc == [(node, gpus)]
    assert state.node_free[node] == free[node] - gpus
    check_consistent(state)
    state.release(alloc)
    assert state.node_free == free
    check_consistent(state)


@pytest.mark.parametrize(
    ("free", "gpus", "nodes_taken"),
    [
        ([8, 8, 8, 8], 16, 2),
        ([8, 8, 8, 8], 12, 2),  # 12 GPUs on 8-GPU nodes: 2 whole nodes, 4 GPUs stranded
        ([8, 8, 8, 8], 9, 2),
        ([8, 8, 8, 8], 32, 4),
        ([8, 7, 8, 8], 24, 3),
        ([8, 7, 8, 8], 25, None),  # 31 GPUs free but only 3 whole nodes
        ([8, 4, 4, 8], 12, 2),  # takes the two whole nodes, never the two half-free ones
        ([8, 4, 4, 0], 12, None),  # 16 GPUs free but only one whole node
    ],
)
def test_multi_node_jobs_take_whole_nodes(free: list[int], gpus: int, nodes_taken: int | None) -> None:
    state = cluster_with(free)
    assert state.nodes_for(gpus) == -(-gpus // 8)
    assert state.fits(gpus) == (nodes_taken is not None)
    if nodes_taken is None:
        with pytest.raises(RuntimeError):
            state.allocate(gpus)
        assert state.node_free == free
        check_consistent(state)
        return
    before = state.allocated_gpus
    alloc = state.allocate(gpus)
    assert len(alloc) == nodes_taken
    assert len({n for n, _ in alloc}) == nodes_taken
    assert all(k == 8 and free[n] == 8 and state.node_free[n] == 0 for n, k in alloc)
    assert state.allocated_gpus - before == state.gpus_held(gpus) == nodes_taken * 8
    check_consistent(state)
    state.release(alloc)
    assert state.node_free == free
    check_consistent(state)


@pytest.mark.parametrize(
    ("gpn", "gpus", "held"), [(8, 1, 1), (8, 8, 8), (8, 9, 16), (8, 12, 16), (4, 12, 12), (1, 5, 5), (6, 13, 18)]
)
def test_gpus_held(gpn: int, gpus: int, held: int) -> None:
    assert ClusterState("c", 0, 10, gpn).gpus_held(gpus) == held


def test_busy_nodes_and_counts() -> None:
    state = cluster_with([8, 3, 0, 8])
    assert state.busy_nodes == 2
    assert state.counts() == [1, 0, 0, 1, 0, 0, 0, 0, 2]
    assert state.free_gpus == 19


def test_down_node_is_not_placed_on() -> None:
    state = cluster_with([8, 8])
    state.set_down(0)
    check_consistent(state)
    assert state.fits(8) and not state.fits(16)
    assert state.allocate(8) == [(1, 8)]
    assert not state.fits(1)
    state.set_up(0)
    check_consistent(state)
    assert state.fits(8)


@settings(max_examples=150, deadline=None)
@given(
    gpn=st.sampled_from([1, 2, 4, 6, 8]),
    nodes=st.integers(1, 6),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=25),
)
def test_fits_agrees_with_allocate(gpn: int, nodes: int, sizes: list[int]) -> None:
    """For any state reached by allocations, fits(k) is True exactly when allocate(k) succeeds."""
    state = ClusterState("c", 0, nodes, gpn)
    for k in sizes:
        fits = state.fits(k)
        before = list(state.node_free)
        try:
            alloc = state.allocate(k)
        except RuntimeError:
            assert not fits
            assert state.node_free == before
        else:
            assert fits
            assert sum(n for _, n in alloc) == state.gpus_held(k) >= k
        check_consistent(state)


def reference_allocate(state: ClusterState, gpus: int) -> Allocation:
    """The allocation as it was written before ``try_allocate`` (one node, or whole nodes one at a time)."""
    gpn = state.gpus_per_node
    state.occupancy_version += 1
    if gpus <= gpn:
        for f in range(gpus, gpn + 1):
            if state.buckets[f]:
                node = state.buckets[f].pop()
                state.buckets[f - gpus].add(node)
                state.node_free[node] = f - gpus
                state.allocated_gpus += gpus
                state.free_gpus -= gpus
                return [(node, gpus)]
        raise RuntimeError("no node fits")
    alloc = []
    for _ in range(-(-gpus // gpn)):
        node = state.buckets[gpn].pop()
        state.buckets[0].add(node)
        state.node_free[node] = 0
        alloc.append((node, gpn))
    state.allocated_gpus += len(alloc) * gpn
    state.free_gpus -= len(alloc) * gpn
    return alloc


@settings(max_examples=150, deadline=None)
@given(
    gpn=st.sampled_from([1, 2, 4, 6, 8]),
    nodes=st.integers(1, 6),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=25),
    releases=st.lists(st.booleans(), min_size=25, max_size=25),
)
def test_try_allocate_is_fits_then_allocate(gpn: int, nodes: int, sizes: list[int], releases: list[bool]) -> None:
    """try_allocate(k) takes the very nodes the allocation before it took, exactly when fits(k), and changes nothing
    when it does not fit."""
    state = ClusterState("c", 0, nodes, gpn)
    twin = ClusterState("c", 0, nodes, gpn)
    held: list[tuple[Allocation, Allocation]] = []
    for k, release in zip(sizes, releases, strict=False):
        if release and held:
            a, b = held.pop(0)
            state.release(a)
            twin.release(b)
        fits = twin.fits(k)
        before = (list(state.node_free), [set(b) for b in state.buckets], state.occupancy_version)
        alloc = state.try_allocate(k)
        if not fits:
            assert alloc is None
            assert (state.node_free, state.buckets, state.occupancy_version) == before
            continue
        expected = reference_allocate(twin, k)
        assert alloc == expected
        assert state.node_free == twin.node_free and state.buckets == twin.buckets
        assert (state.free_gpus, state.allocated_gpus) == (twin.free_gpus, twin.allocated_gpus)
        held.append((alloc, expected))
        check_consistent(state)


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("quickstart.yaml", []),
        ("failures.yaml", ["horizon=2d"]),
        ("power-capped.yaml", ["horizon=12h"]),
    ],
)
def test_sorted_running_lists_give_the_same_run(
    name: str, overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SORTED_FROM running jobs a speed group keeps them in a RunningJobs: the run must be the same, with
    completions, failures (removals) and cap changes (the threshold forced down to 2, and the blocks to 2
    entries, here)."""
    from pathlib import Path

    import pandas as pd

    import gigafactory_sim as g
    from gigafactory_sim.sim import running, state
    from gigafactory_sim.sim.running import RunningJobs

    path = Path(__file__).resolve().parents[1] / "scenarios" / name
    plain = g.run(g.load_scenario(path, overrides))
    monkeypatch.setattr(state, "SORTED_FROM", 2)
    monkeypatch.setattr(running, "LOAD", 2)

    from gigafactory_sim.preparation import prepare
    from gigafactory_sim.sim.engine import Simulation

    sim = Simulation(prepare(g.load_scenario(path, overrides)))
    sorted_ = g.execute(sim)
    assert any(type(gr.running) is RunningJobs for groups in sim.facility.groups for gr in groups.values())
    pd.testing.assert_frame_equal(plain.jobs, sorted_.jobs)
    pd.testing.assert_frame_equal(plain.timeseries, sorted_.timeseries)
    assert plain.summary == sorted_.summary
