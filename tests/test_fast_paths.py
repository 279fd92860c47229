"""Fast paths against the straightforward code they replace (issue #14): the same results, not just close ones.

Each fast path in the engine and its policies keeps the arithmetic of the code it replaces; these tests compare
them on random inputs, ties and edge cases included. The golden outputs (tests/test_golden.py) check the whole
runs.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import simpy

from gigafactory_sim.energy import deferral as deferral_module
from gigafactory_sim.energy.control import PowerControl
from gigafactory_sim.energy.deferral import Deferral, DeferralConfig
from gigafactory_sim.energy.policies import Capping
from gigafactory_sim.energy.solve import MARGIN_W, max_theta
from gigafactory_sim.energy.system import EnergySystem
from gigafactory_sim.federation.network import BYTES_PER_GB, Pipe, Transfer
from gigafactory_sim.grid.signals import Signal
from gigafactory_sim.inference.runtime import preemption_victims
from gigafactory_sim.power.models import DvfsPowerModel, LinearPowerModel
from gigafactory_sim.scheduling import easy
from gigafactory_sim.scheduling.easy import EasyBackfillScheduler, reservation, reservation_stop, shadow_s
from gigafactory_sim.sim import timer as timer_module
from gigafactory_sim.sim.cluster import ClusterState
from gigafactory_sim.sim.state import Job, SpeedGroup
from gigafactory_sim.sim.timer import Environment, Timer
from gigafactory_sim.sim.view import EngineClusterView


def _reference_release_s(d: Deferral, now_s: float, work_s: float) -> float:
    """The window rule as vectorised numpy (np.searchsorted, np.interp, np.argmin)."""
    t = d.signal.times_s
    i0, i1 = np.searchsorted(t, (now_s, now_s + d.cfg.max_delay), side="right")
    cands = np.concatenate(([now_s], t[i0:i1]))
    run = max(min(work_s, d.cfg.run_window), 1.0)
    means = (d._cumulative(cands + run) - d._cumulative(cands)) / run
    return float(cands[int(np.argmin(means))])


def test_deferral_window_rule_equals_the_numpy_one() -> None:
    rng = np.random.default_rng(1)
    checked = 0
    for trial in range(6):
        times = np.cumsum(rng.choice([900.0, 1800.0, 3600.0], 400)) - 5000.0
        values = rng.uniform(50.0, 500.0, 400)
        if trial % 2:
            values = np.round(values / 100.0) * 100.0  # ties between candidate starts
        signal = Signal("carbon", "gCO2/kWh", times, values)
        d = Deferral(DeferralConfig(rule="window", max_delay=6 * 3600.0), signal, {0}, 30 * 86400.0)
        points = np.concatenate(
            (rng.uniform(-8000.0, times[-1] + 8000.0, 800), times[::7], [times[0], times[-1], d._t[-1], -1e9, 1e12])
        )
        for now in points.tolist():
            for work in (0.5, 60.0, 3600.0, float(rng.uniform(0.0, 2e5))):
                assert d.release_s(now, work) == _reference_release_s(d, now, work)
                checked += 1
            assert d._cumulative_at(now) == float(d._cumulative(np.array([now]))[0])
    assert checked > 10_000


def test_deferral_release_many_equals_release_s(monkeypatch: pytest.MonkeyPatch) -> None:
    """The release times decided ahead, many arrivals at once, against :meth:`Deferral.release_s` one by one:
    the same floats, with ties, arrivals on breakpoints, before the signal, past its end, and runs of every
    length (below 1 s, up to past ``run_window``)."""
    rng = np.random.default_rng(2)
    checked = 0
    for trial in range(8):
        times = np.cumsum(rng.choice([900.0, 1800.0, 3600.0], 300)) - 5000.0
        values = rng.uniform(50.0, 500.0, 300)
        if trial % 2:
            values = np.round(values / 100.0) * 100.0  # ties between candidate starts
        signal = Signal("carbon", "gCO2/kWh", times, values)
        cfg = DeferralConfig(rule="window", max_delay=float(rng.choice([3600.0, 6 * 3600.0, 12 * 3600.0])))
        d = Deferral(cfg, signal, {0}, 30 * 86400.0)
        now = np.concatenate(
            (rng.uniform(-8000.0, times[-1] + 8000.0, 3000), times[::3], [times[0], times[-1], d._t[-1], -1e9, 1e12])
        )
        work = np.concatenate(
            (
                rng.choice([0.0, 0.5, 1.0, 60.0, 3600.0, 86400.0, 2e5], len(now) // 2),
                rng.uniform(0.0, 2e5, len(now) - len(now) // 2),
            )
        )
        rng.shuffle(work)
        many = d.release_many(now, work)
        one = [d.release_s(a, w) for a, w in zip(now.tolist(), work.tolist(), strict=True)]
        assert many.tolist() == one
        with monkeypatch.context() as m:  # the table split into smaller ones
            m.setattr(deferral_module, "_MAX_CELLS", 97)
            assert d.release_many(now, work).tolist() == one
        x = np.concatenate((now, times, d._t, now + work))
        assert d._cumulative_many(x).tolist() == [d._cumulative_at(v) for v in x.tolist()]
        checked += len(one)
    thr = Deferral(DeferralConfig(rule="threshold", threshold=200.0), signal, {0}, 30 * 86400.0)
    assert thr.release_many(now[:200], work[:200]).tolist() == [
        thr.release_s(a, w) for a, w in zip(now[:200].tolist(), work[:200].tolist(), strict=True)
    ]
    assert len(d.release_many(np.zeros(0), np.zeros(0))) == 0
    assert checked > 20_000


def test_job_table_name_codes_equal_numpy_unique() -> None:
    """The job table's tenant and class codes: the names sorted as np.unique sorts them (code points: upper case
    before lower, accents after ASCII), each job the index of its name."""
    from gigafactory_sim.workload.jobs import _codes

    rng = np.random.default_rng(4)
    pool = ["research-t001", "Research-t001", "été", "Zürich", "zurich", "a", "a-b", "a_b", "b", "", "日本"]
    values = [pool[k] for k in rng.integers(0, len(pool), 5000).tolist()]
    order = rng.permutation(len(values))
    names, codes = _codes(values, order)
    ref_names, ref_codes = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    assert names == [str(n) for n in ref_names]
    assert codes.dtype == np.int32
    assert np.array_equal(codes, np.asarray(ref_codes, dtype=np.int32).reshape(-1)[order])
    empty_names, empty_codes = _codes([], np.zeros(0, dtype=np.int64))
    assert empty_names == [] and len(empty_codes) == 0


def _reference_after_pass(self: EnergySystem, now_s: float, clusters: list[int]) -> None:
    """EnergySystem.after_pass before the IT limit was kept per segment and the throttled flags per limit
    change: the limit, the thetas and IT power re-derived at every pass."""
    if not self.active:
        return
    for c in clusters:
        if c not in self._blocked_now:
            self.blocked.pop(c, None)
    self._blocked_now.clear()
    ctrl = self.ctrl
    limit = (ctrl.facility_limit_w() - ctrl.b_w - MARGIN_W) / ctrl.a
    assert limit == ctrl.it_limit_w() or (math.isinf(limit) and limit == ctrl.it_limit_w())
    assert ctrl.throttled == any(t < 1.0 for t in ctrl.theta)
    assert ctrl.unthrottled == all(t >= 1.0 for t in ctrl.theta)
    if not (self._quiet_under_cap and all(t >= 1.0 for t in ctrl.theta) and ctrl.it_power_w() <= limit):
        for policy in self.enforcers:
            policy.enforce(ctrl, now_s)
    ops = self.ops
    v = ops.meter.values
    ch = self.ch
    if any(t < 1.0 for t in self.ctrl.theta) or v[ch["throttled_gpus"]] or v[ch["slowed_gpus"]]:
        _SEEN["throttled"] += 1
        v[ch["throttled_gpus"]], v[ch["slowed_gpus"]] = self.ctrl.throttle_stats()
    if self.blocked:
        _SEEN["blocked"] += 1
        it_w = ops.meter.it_power_w()
        for c, at_w in list(self.blocked.items()):
            if it_w < at_w - 1.0:
                self.blocked[c] = it_w
                ops.request_pass(c)
    v[ch["power_blocked_gpus"]] = sum(ops.facility.queued_gpus[c] for c in self.blocked)


_SEEN = {
    "throttled": 0,
    "blocked": 0,
    "deltas": 0,
    "capping": 0,
    "replays": 0,
    "shadows": 0,
    "refused": 0,
    "ref_replays": 0,
    "it_at": 0,
}
_FAST_JOB_DELTA_W = PowerControl.job_delta_w


def _reference_job_delta_w(self: PowerControl, job: Job, c: int, theta: float) -> float:
    """PowerControl.job_delta_w before its values were kept per key: derived at every call (and the kept one
    checked against it)."""
    delta = self.facility.start_delta_w(job, c, self.gpu_power_at(c, job.load, theta))
    assert _FAST_JOB_DELTA_W(self, job, c, theta) == delta
    _SEEN["deltas"] += 1
    return delta


def _capped_runs_equal_with(monkeypatch: pytest.MonkeyPatch, patches: list[tuple[Any, str, Any]]) -> None:
    """Small capped runs (power-capped under a lowered cap that binds all day, carbon-aware) as they are and
    with ``patches`` (object, attribute, replacement) in place: the same results, figure for figure."""
    from gigafactory_sim import load_scenario, run

    root = Path(__file__).resolve().parents[1] / "scenarios"
    cases = (
        ("power-capped.yaml", ["horizon=1d", "energy.power_cap_mw.base_mw=45", "energy.power_cap_mw.windows.0.mw=40"]),
        ("carbon-aware.yaml", ["horizon=2d"]),
    )
    for name, overrides in cases:
        scenario = load_scenario(root / name, [*overrides, "report.interval=1h"])
        fast = run(scenario)
        with monkeypatch.context() as m:
            for target, attribute, replacement in patches:
                m.setattr(target, attribute, replacement)
            ref = run(scenario)
        assert fast.summary["jobs"]["started"] > 100
        assert fast.summary == ref.summary
        pd.testing.assert_frame_equal(fast.jobs, ref.jobs)
        pd.testing.assert_frame_equal(fast.timeseries, ref.timeseries)


def test_energy_after_pass_equals_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """A capped run (admission blocks, capping throttles) with after_pass and the admission's job_delta_w as they
    were: the same results, figure for figure (the golden outputs check the shipped scenarios the same way)."""
    _capped_runs_equal_with(
        monkeypatch,
        [(EnergySystem, "after_pass", _reference_after_pass), (PowerControl, "job_delta_w", _reference_job_delta_w)],
    )
    assert _SEEN["throttled"] and _SEEN["blocked"] and _SEEN["deltas"], _SEEN


def _reference_victims(running: list[Job], st: ClusterState, gpus: int, priority: int, now: float) -> list[Job] | None:
    """InferenceRuntime.preempt_for's choice before preemption_victims: a map of per-node lists of pairs."""
    gpn = st.gpus_per_node
    on_node: dict[int, list[tuple[Job, int]]] = {}
    for job in running:
        for node, k in job.alloc:
            on_node.setdefault(node, []).append((job, k))
    need_free = gpus if gpus <= gpn else gpn
    best: tuple[float, list[Job]] | None = None
    for node, held in on_node.items():
        if not st.node_up[node]:
            continue
        lacking = need_free - st.node_free[node]
        if lacking <= 0:
            continue
        if len(held) == 1:
            job, k = held[0]
            if job.priority < priority and k >= lacking:
                cost = job.gpus * (now - job.start_s)
                if best is None or cost < best[0]:
                    best = (cost, [job])
            continue
        lower = [(j, k) for j, k in held if j.priority < priority]
        if sum(k for _, k in lower) < lacking:
            continue
        chosen: list[Job] = []
        freed = 0
        cost = 0.0
        for job, k in sorted(lower, key=lambda e: e[0].gpus * (now - e[0].start_s)):
            chosen.append(job)
            freed += k
            cost += job.gpus * (now - job.start_s)
            if freed >= lacking:
                break
        if freed >= lacking and (best is None or cost < best[0]):
            best = (cost, chosen)
    return None if best is None else best[1]


def test_preemption_victims_equal_the_reference() -> None:
    """Random clusters (jobs of every size, nodes down, GPUs held by replicas, start times with ties) and requests
    of every size: the same victims, in the same order, as the map of per-node lists it replaces."""
    rng = np.random.default_rng(3)
    checked = found = 0
    for trial in range(60):
        nodes, gpn = int(rng.integers(4, 60)), int(rng.choice([4, 8]))
        st = ClusterState("c", 0, nodes, gpn)
        running: list[Job] = []
        for i in range(int(rng.integers(0, nodes * 3))):
            size = int(rng.choice([1, 2, 3, 4, 8, 16, 32]))
            if rng.random() < 0.15:  # a replica's GPUs: held, but by no training job
                if st.fits(size):
                    st.allocate(size)
                continue
            if not st.fits(size):
                continue
            job = Job(i, 0.0, size, 3600.0, int(rng.integers(0, 3)), 0.5)
            job.alloc = st.allocate(size)
            job.start_s = float(rng.choice([0.0, 100.0, 250.0])) if trial % 2 else float(rng.uniform(0.0, 900.0))
            running.append(job)
        order = rng.permutation(len(running))
        running = [running[k] for k in order]
        for node in rng.choice(nodes, size=int(rng.integers(0, 3)), replace=False).tolist():
            st.set_down(int(node))
        for gpus in (1, 2, 3, 4, gpn, 2 * gpn):
            for priority in (1, 2, 10):
                now = 1000.0 + float(rng.uniform(0.0, 10.0))
                ref = _reference_victims(running, st, gpus, priority, now)
                fast = preemption_victims(running, st, gpus, priority, now)
                assert (None if fast is None else [j.idx for j in fast]) == (
                    None if ref is None else [j.idx for j in ref]
                )
                checked += 1
                found += ref is not None
    assert checked > 1000 and found > 300


class _Table:
    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.submit_s = np.sort(rng.uniform(0.0, 20 * 86400.0, n))
        self.work_s = rng.lognormal(8.0, 1.5, n)
        self.source_idx = rng.integers(0, 2, n).astype(np.int32)
        self.priority = rng.integers(0, 2, n)

    def __len__(self) -> int:
        return len(self.submit_s)


def test_release_times_decided_ahead_are_the_ones_decided_at_arrival() -> None:
    """EnergySystem's release times decided ahead (rows of the job table at a time) against Deferral.release_s at
    each arrival: arrivals in row order, arrivals whose time or work differ from their row's (decided at once),
    rows before the decided ones, and the table's last rows."""
    rng = np.random.default_rng(5)
    times = np.arange(-3600.0, 30 * 86400.0, 3600.0)
    signal = Signal("carbon", "gCO2/kWh", times, rng.uniform(50.0, 500.0, len(times)))
    d = Deferral(DeferralConfig(rule="window", max_delay=6 * 3600.0), signal, {0}, 20 * 86400.0)
    table = _Table(10_000, rng)
    es = EnergySystem.__new__(EnergySystem)
    es.ops = SimpleNamespace(facility=SimpleNamespace(jobs=table))
    es._ahead_lo, es._ahead_now, es._ahead_work, es._ahead_release = 0, [], [], []
    flexible = (table.source_idx == 0) & (table.priority <= 0)
    for i in range(len(table)):
        now, work = float(table.submit_s[i]), float(table.work_s[i])
        if not flexible[i] and i % 3:
            continue  # (not held: not asked)
        if i % 7 == 0:
            now += 1.0  # not its row's arrival
        if i % 11 == 0:
            work *= 2.0
        assert es._release_s(d, i, now, work) == d.release_s(now, work)
        if i % 13 == 0 and i > 5000:
            early = i - 4500  # a row before the decided ones
            assert es._release_s(d, early, now, work) == d.release_s(now, work)


def _reference_reservation(view: EngineClusterView, head: Job) -> tuple[float, int]:
    """easy.reservation before it was split into the replay's stop and its time: the replay over
    running_by_end, end times read as it goes."""
    gpn = view.gpus_per_node
    need = head.gpus
    node_free = view.node_free
    node_up = view.node_up
    touched: dict[int, int] = {}
    if need <= gpn:
        for end_s, job in view.running_by_end():
            for node, k in job.alloc:
                if not node_up[node]:
                    continue
                f = touched.get(node, node_free[node]) + k
                touched[node] = f
                if f >= need:
                    return end_s, 0
        return math.inf, 0
    nodes_needed = -(-need // gpn)
    whole = view.whole_free_nodes
    for end_s, job in view.running_by_end():
        for node, k in job.alloc:
            if not node_up[node]:
                continue
            f = touched.get(node, node_free[node]) + k
            touched[node] = f
            if f == gpn:
                whole += 1
        if whole >= nodes_needed:
            return end_s, whole - nodes_needed
    return math.inf, 0


def test_easy_reservation_and_its_retiming_equal_the_replay() -> None:
    """Random clusters (one or two speed groups, jobs of every size, nodes down, spares held, ties in end
    times) and heads of every size: easy.reservation, and the memo's re-timed reservation after speeds change
    with the occupancy as it was (one group running: the end order stands), equal the replay they replace,
    float for float."""
    rng = np.random.default_rng(6)
    checked = retimed = 0
    for trial in range(80):
        nodes, gpn = int(rng.integers(3, 40)), int(rng.choice([4, 8]))
        st = ClusterState("c", 0, nodes, gpn)
        loads = [0.5] if trial % 2 else [0.5, 0.9]
        groups = {load: SpeedGroup(0, load, float(rng.uniform(0.5, 2.0)), 500.0) for load in loads}
        view = EngineClusterView(st, [], groups)
        for g in groups.values():
            g.advance(float(rng.uniform(0.0, 50.0)))
        for i in range(int(rng.integers(0, nodes * 2))):
            size = int(rng.choice([1, 2, 3, gpn, 2 * gpn, 3 * gpn]))
            if not st.fits(size):
                continue
            load = loads[int(rng.integers(0, len(loads)))]
            work = float(rng.choice([600.0, 3600.0])) if trial % 3 == 0 else float(rng.uniform(60.0, 1e5))
            job = Job(i, 0.0, size, work, 0, load)
            job.alloc = st.allocate(size)
            job.group = groups[load]
            groups[load].add(job)
        for node in rng.choice(nodes, size=int(rng.integers(0, 3)), replace=False).tolist():
            st.set_down(int(node))
        whole = sorted(st.buckets[gpn])
        if whole and trial % 4 == 0:
            st.reserve(whole[0])
        heads = [Job(10_000 + k, 0.0, gpus, 1.0, 0, 0.5) for k, gpus in enumerate((1, 2, gpn, 2 * gpn, 5 * gpn))]
        for head in heads:
            assert reservation(view, head) == _reference_reservation(view, head)
            checked += 1
        version, order_kept = st.occupancy_version, view.ends_keep_order
        stops = [reservation_stop(view, head) for head in heads]
        for g in groups.values():  # a power cap moves the speeds (each group advanced first, as the engine does)
            g.advance(g.t_s + float(rng.uniform(0.0, 100.0)))
            g.speed *= float(rng.uniform(0.3, 1.0))
        assert st.occupancy_version == version
        for head, (stop, extra) in zip(heads, stops, strict=True):
            ref = _reference_reservation(view, head)
            if order_kept:
                assert (shadow_s(view, head, stop), extra) == ref
                retimed += 1
            assert reservation(view, head) == ref
    assert checked > 300 and retimed > 150


def test_occupancy_version_moves_with_every_node_change() -> None:
    """Every change EASY's replay could see (allocate, release, down, up, spare held or let go) moves the
    occupancy version; queries do not."""
    st = ClusterState("c", 0, 4, 8)
    seen = [st.occupancy_version]

    def moved() -> None:
        assert st.occupancy_version > seen[-1]
        seen.append(st.occupancy_version)

    alloc = st.allocate(3)
    moved()
    big = st.allocate(16)
    moved()
    st.fits(8), st.gpus_held(3), st.busy_nodes
    assert st.occupancy_version == seen[-1]
    st.release(alloc)
    moved()
    st.set_down(big[0][0])
    moved()
    st.set_up(big[0][0])
    moved()
    st.release(big)
    moved()
    st.reserve(0)
    moved()
    st.unreserve(0)
    moved()


def _reference_max_theta(pieces: list[tuple[float, float, float]], budget_w: float, theta_min: float) -> float | None:
    """solve.max_theta before its sums were list comprehensions and its min a comparison: generators."""

    def total(theta: float) -> float:
        return sum(n * min(d, theta * b) for n, d, b in pieces)

    if total(1.0) <= budget_w:
        return 1.0
    if total(theta_min) > budget_w:
        return None
    kinks = sorted({theta_min, 1.0, *(d / b for _, d, b in pieces if theta_min < d / b < 1.0)})
    lo = theta_min
    for hi in kinks[1:]:
        if total(hi) > budget_w:
            slope = sum(n * b for n, d, b in pieces if d > lo * b)
            if slope <= 0.0:
                return lo
            return min(hi, lo + (budget_w - total(lo)) / slope)
        lo = hi
    return 1.0


def test_max_theta_equals_the_reference() -> None:
    """Random pieces (demands below, at and above the board limit, kinks tied and at the floor, empty lists)
    and budgets around every total: the same theta, float for float, and the same None."""
    rng = np.random.default_rng(7)
    checked = found = 0
    for _ in range(3000):
        pieces = []
        for _k in range(int(rng.integers(0, 5))):
            b = float(rng.choice([700.0, 1000.0, 1200.0]))
            d = float(rng.choice([b * 0.3, b * 0.65, b, b * 1.2, float(rng.uniform(50.0, 1.3 * b))]))
            pieces.append((float(rng.integers(0, 20_000)), d, b))
        floor = float(rng.choice([0.3, 0.29, 0.65, 1.0]))
        ref_total = sum(n * min(d, b) for n, d, b in pieces)
        low_total = sum(n * min(d, floor * b) for n, d, b in pieces)
        for budget in (ref_total, low_total, float(rng.uniform(low_total * 0.9, ref_total * 1.1 + 1.0)), 0.0):
            for delta in (0.0, 1e-3, -1e-3):
                ref = _reference_max_theta(pieces, budget + delta, floor)
                assert max_theta(pieces, budget + delta, floor) == ref
                checked += 1
                found += ref is not None and ref < 1.0
    assert checked > 30_000 and found > 3000


def _reference_capping_enforce(self: Capping, ctrl: PowerControl, now_s: float) -> None:
    """Capping.enforce before its inputs were read in one walk and its last solve kept: fixed_w and pieces per
    cluster and a solve at every call (and the fast inputs checked against them)."""
    n = len(ctrl.theta)
    limit = ctrl.it_limit_w()
    if all(t >= 1.0 for t in ctrl.theta) and ctrl.it_power_w() <= limit:
        return
    fixed = [ctrl.fixed_w(c) for c in range(n)]
    pieces = [ctrl.pieces(c) for c in range(n)]
    assert ctrl.capping_inputs() == (fixed, pieces)
    _SEEN["capping"] += 1

    def it(c: int, theta: float) -> float:
        return fixed[c] + sum(k * min(d, theta * b) for k, d, b in pieces[c])

    target = [1.0] * n
    if sum(it(c, 1.0) for c in range(n)) > limit:
        for tier in self.tiers:
            others = sum(it(c, target[c]) for c in range(n) if c not in tier)
            budget = limit - others - sum(fixed[c] for c in tier)
            floor = max(ctrl.theta_min[c] for c in tier)
            theta = _reference_max_theta([p for c in tier for p in pieces[c]], budget, floor)
            for c in tier:
                target[c] = floor if theta is None else theta
            if theta is not None:
                break
    for c in range(n):
        _reference_set_theta(ctrl, c, target[c], now_s)


def _reference_set_theta(self: PowerControl, c: int, theta: float, now: float) -> None:
    """PowerControl.set_theta before the groups' constants were kept: looked up and derived at every change."""
    if abs(theta - self.theta[c]) <= 1e-12:
        return
    self.theta[c] = theta
    self.throttled = any(t < 1.0 for t in self.theta)
    self.unthrottled = all(t >= 1.0 for t in self.theta)
    model = self.models[c]
    limit = theta * self.board_w[c]
    for g in self.facility.groups[c].values():
        full_w, full_speed = self.full[id(g)]
        if theta >= 1.0:
            self.ops.set_group_rate(g, full_w, full_speed)
        else:
            base = model.speed(g.load)
            self.ops.set_group_rate(
                g,
                model.power_w(g.load, limit),
                full_speed * (model.speed(g.load, limit) / base if base > 0 else 0.0),
            )
    self.ops.refresh(c)


_FAST_IT_AT = PowerControl.it_at


def _reference_it_at(self: PowerControl, thetas: list[float]) -> float:
    """PowerControl.it_at before the power drawn at a theta was kept per (cluster, theta): derived at every call
    (and the kept one checked against it)."""
    total = self.ops.meter.it_power_w()
    for c, theta in enumerate(thetas):
        if theta == self.theta[c]:
            continue
        limit = max(theta * self.board_w[c], self.models[c].idle_w)
        for g in self.facility.groups[c].values():
            active = self.active_gpus(g)
            if active:
                total += active * (min(self.demand[id(g)], limit) - g.gpu_power_w)
    assert _FAST_IT_AT(self, thetas) == total
    _SEEN["it_at"] += 1
    return total


def _reference_admit(self: EnergySystem, job: Job, c: int) -> bool:
    """EnergySystem.admit before a refusal reused the admission's read of IT power: read again."""
    if self.admission is None or not self.active:
        return True
    self.ops.refresh(c)
    if self.admission.admit(self.ctrl, job, c):
        return True
    self._blocked_now.add(c)
    self.blocked[c] = self.ops.meter.it_power_w()
    _SEEN["refused"] += 1
    return False


@dataclass
class _RefMemo:
    """easy._Memo as it was."""

    head_idx: int = -1
    disruptions: int = -1
    shadow_s: float = math.inf
    extra_nodes: int = 0
    capacity_version: int = -1
    no_fit: set[int] = field(default_factory=set)
    too_late: set[int] = field(default_factory=set)


_REF_MEMOS: dict[int, _RefMemo] = {}


def _head_starts(view: Any) -> Iterator[Any]:
    """The queue's head while it fits (the engine dequeues each started job): every EASY reference's first part."""
    queue = view.queue
    while queue:
        job = queue[0]
        if not view.fits(job.gpus):
            break
        yield job


def _reference_select(self: EasyBackfillScheduler, view: EngineClusterView) -> Iterator[Job]:
    """EasyBackfillScheduler.select before a disruption that left the occupancy as it was only re-timed the
    reservation and before the look-ahead left out the jobs already turned down at once: the replay at every
    disruption, every job of the window looked at in the loop."""
    queue = view.queue
    yield from _head_starts(view)
    if len(queue) < 2:
        return
    head = queue[0]
    memo = _REF_MEMOS.setdefault(id(view), _RefMemo())
    if memo.head_idx != head.idx or memo.disruptions != view.disruptions:
        memo.shadow_s, memo.extra_nodes = _reference_reservation(view, head)
        memo.head_idx, memo.disruptions = head.idx, view.disruptions
        memo.no_fit.clear()
        memo.too_late.clear()
        _SEEN["ref_replays"] += 1
    if memo.capacity_version != view.capacity_version:
        memo.capacity_version = view.capacity_version
        memo.no_fit.clear()
    gpn = view.gpus_per_node
    now_s = view.now_s
    no_fit, too_late = memo.no_fit, memo.too_late
    too_big = view.free_gpus + 1
    for job in list(islice(queue, 1, self.lookahead + 1)):
        gpus = job.gpus
        if gpus >= too_big or job.idx in too_late or job.idx in no_fit:
            continue
        if not view.fits(gpus):
            too_big = gpus
            no_fit.add(job.idx)
            continue
        started = False
        if now_s + view.expected_duration_s(job) <= memo.shadow_s:
            started = True
        elif gpus > gpn:
            nodes = -(-gpus // gpn)
            if nodes <= memo.extra_nodes:
                memo.extra_nodes -= nodes
                started = True
        if not started:
            too_late.add(job.idx)
            continue
        yield job
        free = view.free_gpus
        if free == 0:
            return
        too_big = min(too_big, free + 1)


def _counting(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any) -> Any:
        _SEEN[name] += 1
        return fn(*args)

    return counted


def test_capped_runs_equal_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Capped runs of a smaller facility, full within hours and throttled for hours (GPU limits re-solved at
    most passes, EASY's reservations disrupted by every limit change), with capping, set_theta and EASY's memo
    as they were, the energy system's admit and after_pass reading IT power afresh and a timeout per timer arm:
    the same results, figure for figure (and some reservations re-timed, not replayed)."""
    from gigafactory_sim import load_scenario, run

    root = Path(__file__).resolve().parents[1] / "scenarios"
    small = ["horizon=2d", "facility.clusters.0.nodes=2100", "facility.clusters.1.nodes=1500"]  # (full in hours)
    cases = (
        ("power-capped.yaml", [*small, "energy.power_cap_mw.base_mw=28", "energy.power_cap_mw.windows.0.mw=24"]),
        ("carbon-aware.yaml", [*small, "energy.budgets.0.t_co2=900"]),
    )
    for name, overrides in cases:
        scenario = load_scenario(root / name, [*overrides, "report.interval=1h"])
        _REF_MEMOS.clear()
        with monkeypatch.context() as m:  # (counted: how many reservations were re-timed, not replayed)
            m.setattr(easy, "reservation_stop", _counting("replays", easy.reservation_stop))
            m.setattr(easy, "shadow_s", _counting("shadows", easy.shadow_s))
            fast = run(scenario)
        with monkeypatch.context() as m:
            m.setattr(Capping, "enforce", _reference_capping_enforce)
            m.setattr(EasyBackfillScheduler, "select", _reference_select)
            m.setattr(EnergySystem, "after_pass", _reference_after_pass)
            m.setattr(EnergySystem, "admit", _reference_admit)
            m.setattr(PowerControl, "it_at", _reference_it_at)
            m.setattr("gigafactory_sim.sim.engine.Timer", _ReferenceTimer)
            m.setattr("gigafactory_sim.reliability.checkpoints.Timer", _ReferenceTimer)
            ref = run(scenario)
        assert fast.summary == ref.summary
        pd.testing.assert_frame_equal(fast.jobs, ref.jobs)
        pd.testing.assert_frame_equal(fast.timeseries, ref.timeseries)
    assert _SEEN["capping"] and _SEEN["refused"] and _SEEN["it_at"] and _SEEN["shadows"] > _SEEN["replays"] > 0, _SEEN
    assert _SEEN["ref_replays"] > _SEEN["replays"], _SEEN


class _ReferencePipe:
    """A pipe as it was: a timer event at every send, then an arrival event one latency later."""

    def __init__(self, env: Any, bandwidth_bytes_per_s: float, latency_s: float) -> None:
        self.env = env
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self.latency_s = latency_s
        self.v = 0.0
        self.t_s = 0.0
        self.active: list[tuple[float, int, Transfer]] = []
        self._seq = 0
        self.timer = Timer(env, self._on_sent)
        self.busy_s = 0.0
        self.bytes_sent = 0.0

    def advance(self, now_s: float) -> None:
        dt = now_s - self.t_s
        if dt > 0.0 and self.active:
            self.v += dt * self.bandwidth_bytes_per_s / len(self.active)
            self.busy_s += dt
        self.t_s = now_s

    def start(self, transfer: Transfer) -> None:
        now = self.env.now
        self.advance(now)
        transfer.start_s = now
        transfer.v_finish = self.v + transfer.size_gb * BYTES_PER_GB
        heapq.heappush(self.active, (transfer.v_finish, self._seq, transfer))
        self._seq += 1
        self._arm()

    def sending(self, now_s: float) -> int:
        return len(self.active)

    def finish(self, now_s: float) -> None:
        self.advance(now_s)

    def _arm(self) -> None:
        if not self.active:
            self.timer.cancel()
            return
        left = max(self.active[0][0] - self.v, 0.0)
        self.timer.arm(left * len(self.active) / self.bandwidth_bytes_per_s)

    def _on_sent(self) -> None:
        now = self.env.now
        self.advance(now)
        eps = 1e-9 * max(1.0, abs(self.v))
        while self.active and self.active[0][0] <= self.v + eps:
            _, _, tr = heapq.heappop(self.active)
            tr.sent_s = now
            self.bytes_sent += tr.size_gb * BYTES_PER_GB
            if self.latency_s > 0.0:
                self.env.timeout(self.latency_s).callbacks.append(functools.partial(self._arrive_event, tr))
            else:
                self._arrive(tr)
        self._arm()

    def _arrive_event(self, tr: Transfer, _event: Any) -> None:
        self._arrive(tr)

    def _arrive(self, tr: Transfer) -> None:
        tr.end_s = self.env.now
        done, tr.done = tr.done, None
        assert done is not None
        done(tr)


def _pipe_run(pipe_class: Any, seed: int, latency_s: float) -> tuple[list[tuple[Any, ...]], tuple[float, ...]]:
    """Random transfers on one pipe (bursts started at one instant, equal sizes, starts from arrivals, share
    reads, an end mid-transfer): every arrival, send and read, and the pipe's books at the end."""
    import simpy

    rng = np.random.default_rng(seed)
    env = simpy.Environment()
    pipe = pipe_class(env, 5e10, latency_s)
    log: list[tuple[Any, ...]] = []

    def arrived(tr: Transfer) -> None:
        alone = env.peek() > env.now  # (whether an engine would run its pass inline here)
        log.append(("arrive", tr.job, env.now, tr.sent_s, tr.start_s, pipe.sending(env.now), alone))
        if rng.random() < 0.2:  # a delivery that starts another transfer at once
            start(int(rng.integers(10**6)), 50.0)

    def start(job: int, size_gb: float) -> None:
        tr = Transfer(0, 1, size_gb, arrived, job=job)
        pipe.start(tr)
        log.append(("start", job, env.now, pipe.sending(env.now)))

    t = 0.0
    for job in range(300):
        t += float(rng.exponential(0.8)) if rng.random() < 0.8 else 0.0  # (some at the same instant)
        size = float(rng.choice([50.0, 50.0, 20.0, 200.0, rng.uniform(1.0, 100.0)]))
        env.timeout(t).callbacks.append(lambda _e, j=job, s=size: start(j, s))
        if rng.random() < 0.3:
            env.timeout(t + float(rng.uniform(0.0, 3.0))).callbacks.append(
                lambda _e: log.append(("read", env.now, pipe.sending(env.now)))
            )
    end = t * 0.9
    env.run(until=end)
    pipe.finish(end)
    return log, (pipe.v, pipe.t_s, pipe.busy_s, pipe.bytes_sent, len(pipe.active))


def test_pipe_sends_handled_lazily_equal_a_timer_per_send() -> None:
    """A pipe that handles its sends when next touched and wakes only for arrivals: the same arrivals, at the
    same instants and in the same order, the same send times, shares and books as with an event per send."""
    for seed in range(12):
        for latency_s in (0.0, 0.01, 2.0):
            assert _pipe_run(Pipe, seed, latency_s) == _pipe_run(_ReferencePipe, seed, latency_s)


def test_least_loaded_placement_equals_the_policy_over_all_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Least-loaded placement's two figures worked out alone: the same runs as the policy choosing among every
    candidate with all its estimates (one cluster per site, and research free to use both clusters)."""
    from gigafactory_sim import load_scenario, run
    from gigafactory_sim.federation.runtime import FederationRun

    first: dict[tuple[int, int], int] = {}  # a job of each source and size (what candidates() reads of it)

    def reference(self: FederationRun, s: int, gpus: int, now: float) -> int:
        if not first:
            for j in reversed(range(len(self.job_source))):
                first[self.job_source[j], self.job_gpus[j]] = j
        return self.policy.choose(self.candidates(first[s, gpus], now)).site

    calls = {"fast": 0}
    original = FederationRun._least_loaded_site

    def counted(self: FederationRun, s: int, gpus: int, now: float) -> int:
        calls["fast"] += 1
        return original(self, s, gpus, now)

    path = Path(__file__).resolve().parents[1] / "scenarios" / "federation-4x100k.yaml"
    for extra in ([], ["workload.training.1.clusters=[b200-train, h200-mixed]"]):
        scenario = load_scenario(path, ["horizon=12h", "report.interval=1h", *extra])
        assert len(scenario.workload.training[1].clusters or []) == 1 + len(extra)
        first.clear()
        calls["fast"] = 0
        with monkeypatch.context() as m:
            m.setattr(FederationRun, "_least_loaded_site", counted)
            fast = run(scenario)
        with monkeypatch.context() as m:
            m.setattr(FederationRun, "_least_loaded_site", reference)
            ref = run(scenario)
        assert calls["fast"] > 1000
        assert fast.summary == ref.summary
        pd.testing.assert_frame_equal(fast.jobs, ref.jobs)
        pd.testing.assert_frame_equal(fast.timeseries, ref.timeseries)


class _ReferenceTimer:
    """sim.timer.Timer as it was: a timeout per arm, the ones armed before left on the heap to do nothing."""

    def __init__(self, env: simpy.Environment, fn: Callable[[], None]) -> None:
        self._env = env
        self._fn = fn
        self._event: simpy.Event | None = None

    def arm(self, delay_s: float) -> None:
        event = self._env.timeout(delay_s)
        event.callbacks.append(self._fire)
        self._event = event

    def cancel(self) -> None:
        self._event = None

    @property
    def armed(self) -> bool:
        return self._event is not None

    def _fire(self, event: simpy.Event) -> None:
        if event is self._event:
            self._event = None
            self._fn()


def _timer_trace(
    timer_cls: Any, seed: int, env: simpy.Environment | None = None, ahead_s: float = 5.0
) -> list[tuple[float, str, bool]]:
    """Every handler that ran, in order: (time, name, whether SimPy had another event due at that time), for
    timers re-armed later, earlier and to the same time from their own and other handlers, among plain
    timeouts on a grid of tied times (on ``env``, a plain SimPy environment by default; other arms up to
    ``ahead_s`` ahead)."""
    rng = np.random.default_rng(seed)
    env = simpy.Environment() if env is None else env
    trace: list[tuple[float, str, bool]] = []
    timers: list[Any] = []

    def act(name: str) -> None:
        trace.append((env.now, name, env.peek() == env.now))
        for _ in range(int(rng.integers(0, 4))):
            t = timers[int(rng.integers(len(timers)))]
            u = rng.random()
            if u < 0.1:
                t.cancel()
            elif u < 0.4:
                t.arm(float(rng.integers(0, 4)))  # (grid times: ties with the plain timeouts and each other)
            else:
                t.arm(float(rng.random() * ahead_s))
        if rng.random() < 0.5:
            env.timeout(float(rng.integers(0, 3))).callbacks.append(lambda _e: act(f"plain@{name}"))
        trace.append((env.now, f"armed:{[t.armed for t in timers]}", False))

    for k in range(6):
        timers.append(timer_cls(env, lambda k=k: act(f"timer{k}")))
    for k in range(20):
        env.timeout(float(rng.integers(0, 30))).callbacks.append(lambda _e, k=k: act(f"seed{k}"))
    env.run(until=200.0)
    return trace


def test_timer_fires_as_a_timeout_per_arm() -> None:
    """The timer that schedules its fired wake-ups again fires each handler at the same time and in the same
    order as a timeout per arm, with the same view of what else is due now."""
    for seed in range(60):
        fast, ref = _timer_trace(Timer, seed), _timer_trace(_ReferenceTimer, seed)
        assert [(t, name) for t, name, _ in fast] == [(t, name) for t, name, _ in ref], seed
        assert all(not f or r for (_, _, f), (_, _, r) in zip(fast, ref, strict=True)), seed
        assert len(fast) > 50, seed


def test_dropping_withdrawn_wake_ups_keeps_every_handler_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timers on the engine's Environment, which drops withdrawn wake-ups from its heap (here as soon as they
    are more than half of it), run every handler at the same time and in the same order as on a plain SimPy
    environment, where they stay; another event is due at a handler's time only where it is on the plain one
    (what dropping changes: a withdrawn wake-up is no longer there to be due)."""
    monkeypatch.setattr(timer_module, "_DROP_FROM", 0)
    drops = 0
    for seed in range(40):
        env = Environment()
        dropped = _timer_trace(Timer, seed, env, ahead_s=40.0)  # (mostly far ahead: withdrawn before their time)
        kept = _timer_trace(Timer, seed, simpy.Environment(), ahead_s=40.0)
        assert [(t, name) for t, name, _ in dropped] == [(t, name) for t, name, _ in kept], seed
        assert all(not d or k for (_, _, d), (_, _, k) in zip(dropped, kept, strict=True)), seed
        assert len(kept) > 50, seed
        drops += env.drops
    assert drops > 100


def test_set_theta_equals_the_power_models() -> None:
    """set_theta's written-out DVFS power and speed set every group to the floats the power model's methods
    give (DVFS models of several shapes, loads 0 to past 1, limits above the demand, at it, between idle and
    it and under idle; a linear model through its methods), and the same throttle flags."""
    models = [
        DvfsPowerModel(idle_w=122.0, slope_w=800.0, limit_w=700.0),
        DvfsPowerModel(idle_w=150.0, slope_w=1100.0, limit_w=1000.0, alpha=2.3),
        DvfsPowerModel(idle_w=90.0, slope_w=300.0, limit_w=400.0, alpha=1.0),
        LinearPowerModel(idle_w=100.0, max_w=700.0, limit_w=600.0),
    ]
    loads = [0.0, 0.1, 0.3, 0.65, 0.7225, 0.9, 1.0, 1.2]
    rng = np.random.default_rng(7)

    def control() -> tuple[PowerControl, list[tuple[int, float, float]]]:
        groups = [
            {load: SpeedGroup(c, load, (c + 1) * 1.1 * m.speed(load), m.power_w(load)) for load in loads}
            for c, m in enumerate(models)
        ]
        names = ("gpu_train_w", "gpu_idle_w", "node_train_w", "node_idle_w")
        facility = SimpleNamespace(
            power_models=models,
            clusters=models,
            groups=groups,
            ch=[{n: i for i, n in enumerate(names)}] * len(models),
            extra_it_idx=[()] * len(models),
        )
        calls: list[tuple[int, float, float]] = []
        ops = SimpleNamespace(
            facility=facility,
            set_group_rate=lambda g, w, s: calls.append((id(g), w, s)),
            refresh=lambda c: calls.append((-1, float(c), 0.0)),
        )
        return PowerControl(ops, [0.3] * len(models)), calls  # type: ignore[arg-type]

    fast, fast_calls = control()
    ref, ref_calls = control()
    ids = {id(g): (c, g.load) for c, gs in enumerate(fast.facility.groups) for g in gs.values()}
    ids.update({id(g): (c, g.load) for c, gs in enumerate(ref.facility.groups) for g in gs.values()})
    kinks = [float(m.demand_w(load) / m.limit_w) for m in models for load in loads] + [
        m.idle_w / m.limit_w for m in models
    ]
    thetas = [*kinks, 0.0, 0.05, 0.3, 0.5, 1.0, 1.0, 1.3, *rng.random(300).tolist()]
    for theta in thetas:
        c = int(rng.integers(len(models)))
        fast.set_theta(c, theta, 0.0)
        _reference_set_theta(ref, c, theta, 0.0)
        assert (fast.throttled, fast.unthrottled, fast.theta) == (ref.throttled, ref.unthrottled, ref.theta)
    assert [(ids.get(i, i), w, s) for i, w, s in fast_calls] == [(ids.get(i, i), w, s) for i, w, s in ref_calls]
    assert len(fast_calls) > 1000


def _reference_easy_select(self: EasyBackfillScheduler, view: Any) -> Iterator[Any]:
    """EASY backfilling as the textbook states it, nothing kept between passes: start from the head while jobs
    fit; then the head's reservation replayed afresh, and each of the next ``lookahead`` jobs started if it fits
    and ends by the shadow time, or fits on the nodes spare then."""
    queue = view.queue
    yield from _head_starts(view)
    if len(queue) < 2:
        return
    shadow, extra = reservation(view, queue[0])
    gpn = view.gpus_per_node
    for job in list(islice(queue, 1, self.lookahead + 1)):
        if not view.fits(job.gpus):
            continue
        if view.now_s + view.expected_duration_s(job) <= shadow:
            yield job
        elif job.gpus > gpn and -(-job.gpus // gpn) <= extra:
            extra -= -(-job.gpus // gpn)
            yield job
        if view.free_gpus == 0:
            return


def test_easy_backfilling_under_a_binding_cap_equals_the_textbook_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Capped runs (every change of a GPU limit moves the running jobs' ends, and with them the shadow time)
    with EASY's memory between passes (jobs turned down as not fitting or too late, the reservation re-timed
    rather than replayed) and with the plain rule: the same starts, figure for figure."""
    _capped_runs_equal_with(monkeypatch, [(EasyBackfillScheduler, "select", _reference_easy_select)])


def test_meter_channels_are_current_whenever_admission_reads_them_unrefreshed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The admission gate refreshes a cluster's channels only after it admitted a job there in the same pass
    (that job may have started since): at every other admission a refresh changes nothing, and the runs equal
    runs that refresh before every admission."""
    checked = [0]
    fast_admit = EnergySystem.admit

    def checking_admit(self: EnergySystem, job: Job, c: int) -> bool:
        if self.admission is not None and self.active and self._admitted_on != c:
            before = self.ops.meter.values.copy()
            self.ops.refresh(c)
            np.testing.assert_array_equal(self.ops.meter.values, before)
            checked[0] += 1
        return fast_admit(self, job, c)

    def refreshing_admit(self: EnergySystem, job: Job, c: int) -> bool:
        if self.admission is not None and self.active:
            self.ops.refresh(c)
        return fast_admit(self, job, c)

    from gigafactory_sim import load_scenario, run

    root = Path(__file__).resolve().parents[1] / "scenarios"
    with monkeypatch.context() as m:
        m.setattr(EnergySystem, "admit", checking_admit)
        run(load_scenario(root / "power-capped-de.yaml", ["horizon=2d", "report.interval=1h"]))
        run(
            load_scenario(
                root / "failures.yaml",
                ["horizon=2d", "energy={power_cap_mw: 10, policies: [{kind: admission}, {kind: capping}]}"],
            )
        )
    assert checked[0] > 1000
    _capped_runs_equal_with(monkeypatch, [(EnergySystem, "admit", refreshing_admit)])
