"""A federation's run: every site's engine on one SimPy clock, the placement of each training job as it
arrives, and the data transfers placement starts.

Events are per job (one arrival batch per distinct submit time, one transfer end, then the site's own events) and
per report interval of each site; no process per site per job. Each site is a full
:class:`~gigafactory_sim.sim.engine.Simulation` (its features, caps and budgets act on it alone); the federation
submits a job to a site the instant it is placed there, or when its dataset has arrived over the network. Jobs in
progress at t = 0 (``initial_state: steady``, :mod:`gigafactory_sim.federation.warm`) are placed by the same
policy among the sites where they fit at once, and move no data.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import simpy

from gigafactory_sim.federation.config import MigrationConfig
from gigafactory_sim.federation.forecast import Forecast, forecast_of
from gigafactory_sim.federation.migration import Destination, best_move
from gigafactory_sim.federation.network import BYTES_PER_GB, Network, Pipe, Transfer
from gigafactory_sim.federation.placement import Candidate, LeastLoaded, build_placement
from gigafactory_sim.federation.prepare import PreparedFederation
from gigafactory_sim.sim import collector
from gigafactory_sim.sim.engine import ProgressFn, Simulation
from gigafactory_sim.sim.ops import EngineOps, Outcome
from gigafactory_sim.sim.state import Job, SpeedGroup
from gigafactory_sim.sim.stop import StopSwitch
from gigafactory_sim.sim.timer import Environment
from gigafactory_sim.units import J_PER_MWH

__all__ = ["FederationRun", "LoadBook"]


class LoadBook:
    """Queued and running work per cluster of one site, kept from the engine's run hooks, for placement's
    estimates: GPU-seconds queued, and the GPU-weighted expected ends of the running jobs."""

    def __init__(self, ops: EngineOps) -> None:
        f = ops.facility
        self.facility = f
        n_c = len(f.clusters)
        self.speed = [{load: g.speed for load, g in groups.items()} for groups in f.groups]  # at the board limit
        self.queued_gs = [0.0] * n_c
        self.run_end_gs = [0.0] * n_c  # sum of gpus x expected end over running jobs
        self.run_gpus = [0] * n_c
        n = len(f.jobs)
        self._queued = np.zeros(n)
        self._end = np.zeros(n)

    def on_enqueue(self, job: Job, c: int) -> None:
        w = job.gpus * job.work_s / self.speed[c][job.load]
        self._queued[job.idx] = w
        self.queued_gs[c] += w

    def on_start(self, job: Job, group: SpeedGroup, now: float) -> None:
        c = group.cluster
        self.queued_gs[c] -= self._queued[job.idx]
        end = now + job.work_s / self.speed[c][job.load]
        self._end[job.idx] = end
        self.run_end_gs[c] += job.gpus * end
        self.run_gpus[c] += job.gpus

    def on_stop(self, job: Job, outcome: Outcome, cause: str, energy_j: float) -> None:
        c = job.cluster
        self.run_end_gs[c] -= job.gpus * self._end[job.idx]
        self.run_gpus[c] -= job.gpus

    def wait_s(self, c: int, gpus: int, now: float) -> float:
        """Estimated wait of a job of ``gpus`` GPUs sent to cluster ``c`` now: none if it fits beside the running
        and the queued jobs, else the queued and the running work drained at the cluster's size."""
        f = self.facility
        st = f.clusters[c]
        if st.total_gpus - st.allocated_gpus - f.queued_gpus[c] >= gpus:
            return 0.0
        running_left = max(self.run_end_gs[c] - now * self.run_gpus[c], 0.0)
        return (max(self.queued_gs[c], 0.0) + running_left) / st.total_gpus


class SiteOption(NamedTuple):
    """An allowed site of a training source, as placement reads it: the clusters the source may use there,
    the largest, whether it is home, the pipe its dataset would take (None: nothing to move), and the egress."""

    site: int
    clusters: tuple[int, ...]
    largest_gpus: int
    home: bool
    pipe: Pipe | None
    dataset_bytes: float
    egress_eur: float


class FederationRun:
    """One run of a prepared federation. Build, then :meth:`run` once."""

    def __init__(
        self,
        prepared: PreparedFederation,
        progress: ProgressFn | None = None,
        probes: Sequence[Callable[[EngineOps], object]] = (),
    ) -> None:
        fed = prepared.scenario
        self.prepared = prepared
        self.scenario = fed
        self.horizon_s = fed.horizon_s
        self.env = env = Environment()
        self.policy = build_placement(fed.placement)
        self.books: list[LoadBook] = []

        def book(ops: EngineOps) -> LoadBook:
            b = LoadBook(ops)
            self.books.append(b)
            return b

        # The books observe the sites' queues only for a policy that reads the wait; otherwise they give the
        # speeds alone, and the sites run without an observer (their hot paths skip the hooks).
        observe = "wait" in self.policy.needs
        self.sites = [
            Simulation(p, progress if k == 0 else None, (book, *probes) if observe else probes, env=env)
            for k, p in enumerate(prepared.sites)
        ]
        if not observe:
            self.books = [LoadBook(site) for site in self.sites]
        self.network = Network(env, fed.site_names, fed.network.links)
        jobs = prepared.jobs
        n = len(jobs)
        self.rec_site = np.full(n, -1, dtype=np.int32)
        self.rec_local = np.full(n, -1, dtype=np.int64)
        self.rec_delivered_s = np.full(n, np.nan)
        self.rec_transfer_gb = np.zeros(n)
        self.rec_egress_eur = np.zeros(n)
        self.rec_checkpoint_gb = np.zeros(n)  # checkpoints moved by migrations
        self.rec_migrations = np.zeros(n, dtype=np.int64)
        self.local_segment: list[list[int]] = [[] for _ in self.sites]  # each site row: the job's n-th stay
        self.local_to_global: list[list[int]] = [[] for _ in self.sites]
        self.n_submitted = 0
        self._next = 0
        self._switch = StopSwitch(self.env, self.horizon_s)
        self._delivered_cb = self._delivered  # bound once: a transfer holds it until it arrives
        self.stopped_at_s: float | None = None
        self._energy_w_per_gpu = [self._site_w_per_gpu(s) for s in self.sites]
        self._needs = self.policy.needs
        self.options = [self._site_options(s) for s in range(len(prepared.sources))]
        jobs = prepared.jobs
        self.job_source: list[int] = jobs.source_idx.tolist()
        self.job_gpus: list[int] = jobs.gpus.tolist()
        self._job_work: list[float] = jobs.work_s.tolist()
        self._job_prio: list[int] = jobs.priority.tolist()
        self._submit_s: list[float] = jobs.submit_s.tolist()
        self.carbon_forecasts = [forecast_of(sig.carbon) for sig in prepared.signals]
        self.price_forecasts = [forecast_of(sig.price) for sig in prepared.signals]
        needs = self._needs
        self._reads = ("wait" in needs, "load" in needs, "carbon" in needs, "price" in needs)
        # what candidates() reads of each option's site, looked up once
        self._option_refs = [
            [
                (
                    opt,
                    self.sites[opt.site].facility,
                    self.books[opt.site],
                    self._energy_w_per_gpu[opt.site],
                    self.carbon_forecasts[opt.site],
                    self.price_forecasts[opt.site],
                )
                for opt in options
            ]
            for options in self.options
        ]
        # least-loaded placement reads two figures of each candidate: they are worked out alone (_least_loaded_site)
        self._least_loaded = type(self.policy) is LeastLoaded
        self._least_loaded_rows = [
            [
                (
                    opt.site,
                    opt.largest_gpus,
                    opt.clusters[0] if len(opt.clusters) == 1 else -1,  # (one cluster: its state, read directly)
                    f.clusters[opt.clusters[0]],
                    opt.clusters,
                    f.clusters,
                    f.queued_gpus,
                    opt.pipe,
                    opt.dataset_bytes,
                )
                for opt, f, *_ in refs
            ]
            for refs in self._option_refs
        ]
        self._fits: list[dict[int, tuple[int, ...]]] = [{} for _ in prepared.sources]  # by source, then GPUs

    @staticmethod
    def _site_w_per_gpu(site: Simulation) -> list[dict[float, float]]:
        """Facility watts per busy GPU of each cluster and load: GPU at its board limit, node share, PUE."""
        pue = site.scenario.facility.pue
        factor = float(pue) if isinstance(pue, int | float) else 1.0
        f = site.facility
        return [
            {load: (g.gpu_power_w + f.node_busy_w_per_gpu[c]) * factor for load, g in groups.items()}
            for c, groups in enumerate(f.groups)
        ]

    # -- placement -------------------------------------------------------------------------------------------
    def _site_options(self, s: int) -> list[SiteOption]:
        """Each allowed site of source ``s`` with what placement reads of it, in the scenario's order."""
        plan = self.prepared.sources[s]
        out = []
        for k in plan.allowed:
            f = self.sites[k].facility
            names = plan.clusters[k]
            cs = tuple(c for c, n in enumerate(f.cluster_names) if names is None or n in names)
            away = k != plan.home
            pipe = self.network.pipes[plan.home, k] if away and plan.dataset_gb > 0 else None
            egress = self.network.egress_eur(plan.home, k, plan.dataset_gb) if pipe is not None else 0.0
            out.append(SiteOption(k, cs, plan.largest_gpus[k], not away, pipe, plan.dataset_gb * BYTES_PER_GB, egress))
        return out

    def candidates(self, i: int, now: float) -> list[Candidate]:
        """The allowed sites where job ``i`` fits, with its estimates there (those the policy reads; the others
        are 0: the queue wait is left out unless ``wait`` is needed, the start delay is then the transfer)."""
        s = self.job_source[i]
        gpus = self.job_gpus[i]
        work_s = self._job_work[i]
        load = self.prepared.jobs.source_load[s]
        wait_needed, load_needed, carbon_needed, price_needed = self._reads
        out = []
        for opt, f, book, w_per_gpu, carbon, price in self._option_refs[s]:
            if opt.largest_gpus < gpus:
                continue
            cs = opt.clusters
            states = f.clusters
            if len(cs) == 1:
                c_best = cs[0]
                wait = book.wait_s(c_best, gpus, now) if wait_needed else 0.0
            elif wait_needed:
                wait, c_best = min((book.wait_s(c, gpus, now), c) for c in cs if states[c].total_gpus >= gpus)
            else:
                wait, c_best = 0.0, next(c for c in cs if states[c].total_gpus >= gpus)
            pipe = opt.pipe
            # the transfer at the pipe's share now: (n + 1) x alone (Network.estimate_s)
            transfer = (
                0.0
                if pipe is None
                else opt.dataset_bytes * (pipe.sending(now) + 1) / pipe.bandwidth_bytes_per_s + pipe.latency_s
            )
            run_s = work_s / book.speed[c_best][load]
            committed_share = 0.0
            if load_needed:
                if len(cs) == 1:
                    st = states[c_best]
                    committed_share = (st.allocated_gpus + f.queued_gpus[c_best]) / st.total_gpus
                else:
                    total = sum(states[c].total_gpus for c in cs)
                    committed_share = sum(states[c].allocated_gpus + f.queued_gpus[c] for c in cs) / total
            t0 = now + transfer + wait
            out.append(
                Candidate(
                    opt.site,
                    opt.home,
                    committed_share,
                    transfer + wait,
                    transfer,
                    opt.egress_eur,
                    carbon.mean(t0, t0 + run_s) if carbon_needed and carbon is not None else 0.0,
                    price.mean(t0, t0 + run_s) if price_needed and price is not None else 0.0,
                    gpus * run_s * w_per_gpu[c_best][load] / J_PER_MWH,
                )
            )
        return out

    def _place(self, i: int, now: float, opened: list[int]) -> None:
        s = self.job_source[i]
        plan = self.prepared.sources[s]
        gpus = self.job_gpus[i]
        fits = self._fits[s].get(gpus)
        if fits is None:
            fits = self._fits[s][gpus] = tuple(k for k in plan.allowed if plan.largest_gpus[k] >= gpus)
        if len(fits) == 1:  # one allowed site where it fits: nothing to choose
            k = fits[0]
        elif self._least_loaded and not plan.warm:
            k = self._least_loaded_site(s, gpus, now)
        else:
            options = self.candidates(i, now)
            if plan.warm:  # a job in progress at t = 0 runs where it fits at once (queues only if none has room)
                options = [c for c in options if self.fits_now(i, c.site)] or options
            k = self.policy.choose(options).site
            if not any(c.site == k for c in options):  # a policy may only return one of the candidates
                raise RuntimeError(f"placement {self.scenario.placement.kind} chose a site it was not offered")
        self.rec_site[i] = k
        self.n_submitted += 1
        if k != plan.home and plan.dataset_gb > 0 and not plan.warm:  # (a job in progress moved its data before)
            self.rec_transfer_gb[i] = plan.dataset_gb
            tr = self.network.send(plan.home, k, plan.dataset_gb, self._delivered_cb, i)
            self.rec_egress_eur[i] = tr.egress_eur
            return
        if k not in opened:
            opened.append(k)
            self.sites[k].begin_submissions()
        self._submit(i, k)

    def _least_loaded_site(self, s: int, gpus: int, now: float) -> int:
        """``LeastLoaded().choose(self.candidates(i, now)).site`` for a job of source ``s`` and ``gpus`` GPUs,
        computing only the two figures it reads, with the same arithmetic: the committed share, then the start
        delay (the transfer at the pipe's share now; no wait); the first site of equals."""
        best_k, best_share, best_delay = -1, 0.0, 0.0
        for k, largest, only, st, cs, states, queued, pipe, dataset_bytes in self._least_loaded_rows[s]:
            if largest < gpus:
                continue
            if only >= 0:  # (its one cluster)
                share = (st.allocated_gpus + queued[only]) / st.total_gpus
            else:
                total = sum(states[c].total_gpus for c in cs)
                share = sum(states[c].allocated_gpus + queued[c] for c in cs) / total
            if pipe is None:
                delay = 0.0
            else:
                n = pipe.sending(now) if pipe.sent_at_s <= now else len(pipe.active)
                delay = dataset_bytes * (n + 1) / pipe.bandwidth_bytes_per_s + pipe.latency_s
            if best_k < 0 or share < best_share or (share == best_share and delay < best_delay):
                best_k, best_share, best_delay = k, share, delay
        return best_k

    def fits_now(self, i: int, k: int) -> bool:
        """Whether job ``i`` fits at site ``k`` beside the jobs running and queued there now (on a cluster its
        source may use: its free GPUs, not counting node fragmentation)."""
        s = self.job_source[i]
        gpus = self.job_gpus[i]
        f = self.sites[k].facility
        opt = next(o for o in self.options[s] if o.site == k)
        return any(
            f.clusters[c].total_gpus - f.clusters[c].allocated_gpus - f.queued_gpus[c] >= gpus for c in opt.clusters
        )

    def _submit(self, i: int, k: int, work_s: float | None = None) -> None:
        """Job ``i`` joins site ``k``'s queue now (``work_s``: what is left of it after a migration)."""
        to_global = self.local_to_global[k]
        local = len(to_global)
        to_global.append(i)
        self.rec_local[i] = local
        site = self.sites[k]
        site.jobs.copy_row(local, self.prepared.jobs, i)
        if work_s is None:  # its first stay: delivered now
            self.local_segment[k].append(0)
            self.rec_delivered_s[i] = self.env.now
            site.submit(
                local, self._submit_s[i], self.job_gpus[i], self._job_work[i], self._job_prio[i], self.job_source[i]
            )
            return
        self.local_segment[k].append(int(self.rec_migrations[i]))
        site.jobs.work_s[local] = work_s
        site.submit(local, self._submit_s[i], self.job_gpus[i], work_s, self._job_prio[i], self.job_source[i])

    def _delivered(self, tr: Transfer) -> None:
        site = self.sites[tr.dst]
        site.begin_submissions()
        self._submit(tr.job, tr.dst)
        site.end_submissions()

    # -- migration -------------------------------------------------------------------------------------------
    def _migrations(self, cfg: MigrationConfig) -> Generator[simpy.Event, Any, None]:
        while True:
            yield self.env.timeout(cfg.interval)
            self.check_migrations(cfg, self.env.now)

    def check_migrations(self, cfg: MigrationConfig, now: float) -> None:
        """Move every long running job that gains enough elsewhere (:mod:`gigafactory_sim.federation.migration`)."""
        forecasts = self.carbon_forecasts if cfg.by == "carbon" else self.price_forecasts
        for k, site in enumerate(self.sites):
            here = forecasts[k]
            if here is None:
                continue
            for job in list(site.facility.running()):
                group = job.group
                assert group is not None
                group.advance(now)
                left_v = job.v_finish - group.v  # reference-seconds of work left
                if group.speed <= 0.0 or left_v / group.speed < cfg.min_remaining:
                    continue
                options = self._destinations(job.idx, k, left_v, forecasts)
                dest = best_move(cfg, now, here, left_v / group.speed, options) if options else None
                if dest is not None:
                    self.migrate(job, k, dest.site)

    def _destinations(
        self, local: int, k: int, left_v: float, forecasts: list[Forecast | None]
    ) -> list[tuple[Destination, Forecast]]:
        """The allowed sites, other than ``k``, where the job fits at once, linked to ``k`` if it has a
        checkpoint to move, and with a forecast."""
        i = self.local_to_global[k][local]
        s = self.job_source[i]
        plan = self.prepared.sources[s]
        gpus = self.job_gpus[i]
        load = self.prepared.jobs.source_load[s]
        out = []
        for opt in self.options[s]:
            k2 = opt.site
            forecast = forecasts[k2]
            if k2 == k or forecast is None or opt.largest_gpus < gpus:
                continue
            if plan.checkpoint_gb > 0 and not self.network.has_link(k, k2):
                continue
            f = self.sites[k2].facility
            free = [
                c
                for c in opt.clusters
                if f.clusters[c].total_gpus - f.clusters[c].allocated_gpus - f.queued_gpus[c] >= gpus
            ]
            if free:
                transfer = self.network.estimate_s(k, k2, plan.checkpoint_gb)
                out.append((Destination(k2, transfer, left_v / self.books[k2].speed[free[0]][load]), forecast))
        return out

    def migrate(self, job: Job, k: int, k2: int) -> None:
        """Stop ``job`` at site ``k`` with its progress, move its checkpoint to ``k2``, and resume it there."""
        site = self.sites[k]
        c = job.cluster
        site.begin_event()
        site.stop(job, "migrated", "migration")
        site.changed(c)
        site.request_pass(c)
        i = self.local_to_global[k][job.idx]
        plan = self.prepared.sources[self.job_source[i]]
        self.rec_migrations[i] += 1
        self.rec_site[i] = k2
        self.rec_local[i] = -1
        if plan.checkpoint_gb > 0:
            self.rec_checkpoint_gb[i] += plan.checkpoint_gb
            tr = self.network.send(k, k2, plan.checkpoint_gb, partial(self._resumed, i, job.work_s))
            self.rec_egress_eur[i] += tr.egress_eur
            return
        self._resumed(i, job.work_s, None, k2)

    def _resumed(self, i: int, work_s: float, tr: Transfer | None, k2: int | None = None) -> None:
        k = tr.dst if tr is not None else k2
        assert k is not None
        site = self.sites[k]
        site.begin_submissions()
        self._submit(i, k, work_s)
        site.end_submissions()

    # -- arrivals --------------------------------------------------------------------------------------------
    def _arrivals(self) -> Generator[simpy.Event, Any, None]:
        self._arrive(None)
        return
        yield

    def _arrive(self, _event: simpy.Event | None) -> None:
        env = self.env
        now = env.now
        submit = self._submit_s
        n = len(submit)
        i = self._next
        opened: list[int] = []
        while i < n and submit[i] <= now:
            self._place(i, now, opened)
            i += 1
        self._next = i
        if i < n:
            env.timeout(submit[i] - now).callbacks.append(self._arrive)
        for k in opened:
            self.sites[k].end_submissions()

    # -- run -------------------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop the run at its next event (safe from a signal handler); every site closes at the time reached."""
        self._switch.request()

    @property
    def n_events(self) -> int:
        return sum(s.n_events for s in self.sites) + self.n_submitted + len(self.network.log)

    def run(self) -> None:
        self.env.process(self._arrivals())
        for site in self.sites:
            site.start_processes()
        if self.scenario.migration is not None:
            self.env.process(self._migrations(self.scenario.migration))
        with collector.paced():  # (garbage collection paced to the heap: sim/collector.py)
            self.env.run(until=self.horizon_s)
        now = self._switch.end_s()
        self.stopped_at_s = self._switch.stopped_at_s
        self.horizon_s = now
        self.network.finish(now)
        for site in self.sites:
            site.finish_run(now)
