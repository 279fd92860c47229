"""The SimPy model of a facility: arrivals, scheduling passes, completions and report ticks.

Events are per job (an arrival, a start, an end) and per report interval; no process per GPU or node. Cluster
occupancy lives in arrays (:mod:`gigafactory_sim.sim.cluster`); running jobs sit in speed groups
(:mod:`gigafactory_sim.sim.state`) whose next completion is one re-armable timer; power is piecewise constant
between events and integrated exactly by the :class:`~gigafactory_sim.sim.meter.Meter`.

Lifecycle (after desmod): prepare (:func:`gigafactory_sim.preparation.prepare`: all file reading and input checks),
build (``Simulation(prepared)``: the shared :class:`~gigafactory_sim.sim.facility.Facility` and the features the
scenario enables), run (:meth:`Simulation.run`), collect (:mod:`gigafactory_sim.sim.collect`, each feature adding
its own columns and sections). Features act through :class:`~gigafactory_sim.sim.ops.EngineOps`, which this class
implements; the engine calls them back through the hooks of :mod:`gigafactory_sim.sim.ops`.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Generator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy
from simpy.events import NORMAL

from gigafactory_sim.features import build_features
from gigafactory_sim.random_streams import RandomStreams
from gigafactory_sim.scheduling.base import Scheduler, starts_lone_job
from gigafactory_sim.sim import collector
from gigafactory_sim.sim.cluster import Allocation
from gigafactory_sim.sim.facility import Facility
from gigafactory_sim.sim.hooks import Hooks
from gigafactory_sim.sim.ops import EngineOps, Outcome
from gigafactory_sim.sim.state import COMPLETED, FAILED, MIGRATED, QUEUED, RUNNING, Job, SpeedGroup
from gigafactory_sim.sim.stop import StopSwitch
from gigafactory_sim.sim.timer import Environment, Timer, Wake, call_later

if TYPE_CHECKING:
    from gigafactory_sim.preparation import Prepared

__all__ = ["ProgressFn", "Simulation"]

ProgressFn = Callable[[float, float], None]
"""Called as ``progress(now_s, horizon_s)`` at every report tick."""


class Simulation:
    """One run of one prepared scenario. Build, then :meth:`run` once."""

    def __init__(
        self,
        prepared: Prepared,
        progress: ProgressFn | None = None,
        probes: Sequence[Callable[[EngineOps], object]] = (),
        env: simpy.Environment | None = None,
    ) -> None:
        """``probes``: extra hook objects built from the engine's API after the scenario's features (to observe
        passes, starts and stops without touching the model: tests and instrumentation).

        ``env``: a clock shared with other sites (a federation); the site's jobs then come from outside, one
        :meth:`submit` each, instead of from its own arrivals, and :meth:`start_processes` / :meth:`finish_run` replace
        :meth:`run`."""
        scenario = prepared.scenario
        self.scenario = scenario
        self.horizon_s = scenario.horizon_s
        self.progress = progress
        self.env = Environment() if env is None else env
        self.streams = RandomStreams(scenario.seed)
        self.jobs = prepared.jobs
        self._scheduler: Scheduler = scenario.scheduler.build()
        specs = build_features(scenario, prepared.inputs)
        extra: list[str] = []
        it_extra: list[list[str]] = [[] for _ in scenario.facility.clusters]
        for spec in specs:
            names, it_by_cluster = spec.meter_channels()
            extra += names
            for c, it_names in enumerate(it_by_cluster):
                it_extra[c] += it_names
        self.facility = facility = Facility(scenario, self.jobs, extra, it_extra)
        self.meter = facility.meter
        for groups in facility.groups:
            for g in groups.values():
                g.timer = Timer(self.env, partial(self._on_completion, g))
        self._dirty: set[int] = set()
        self._pass_pending = False  # a pass is due: a zero-delay event, or inline at the end of this handler
        self._pass_inline = False  # the due pass runs at the end of the engine's handler now running
        self._in_handler = False  # an engine-owned event handler (arrival, completion, pass) is running
        self._next_arrival = 0
        self._arrive_cbs: list[Callable[[simpy.Event], None]] = [self._arrive]  # (every arrival wake-up's)
        names = facility.cluster_names
        self._source_clusters: list[tuple[int, ...]] = [
            tuple(names.index(n) for n in names_) if names_ else tuple(range(len(names)))
            for names_ in self.jobs.source_clusters
        ]
        self._switch = StopSwitch(self.env, self.horizon_s)
        self.stopped_at_s: float | None = None  # set when request_stop ended the run before its horizon
        self.n_events = 0  # handled events: arrivals, completions, scheduling passes, report ticks, features'
        self.ticks: list[tuple[float, np.ndarray, int, int]] = []
        self.hooks = Hooks()
        self.features: dict[str, object] = {}  # the built features by registry name (for inspection)
        for spec in specs:
            feature = spec.build(self)
            self.features[spec.name] = feature
            self.hooks.add(feature)
        for probe in probes:
            self.hooks.add(probe(self))
        self._observers = tuple(self.hooks.run_observers)  # the hot path reads these, not the hook lists
        self._gates = tuple(self.hooks.start_gates)
        self._arrival_gates = tuple(self.hooks.arrival_gates)
        # a job arriving alone on an empty queue starts without a queue entry and a pass (see _arrive)
        self._lone_starts = starts_lone_job(self._scheduler) and not self._observers and not self._gates
        self.ticks.append((0.0, self.meter.snapshot(), 0, 0))
        for c in range(len(facility.clusters)):
            facility.refresh(c)

    # -- EngineOps: small and published ---------------------------------------------------------------------
    @property
    def n_submitted(self) -> int:
        return self.facility.n_submitted

    def begin_event(self) -> float:
        self.n_events += 1
        now = self.env.now
        self.meter.advance(now)
        return now

    def refresh(self, c: int) -> None:
        self.facility.refresh(c)

    def changed(self, c: int) -> None:
        self.refresh(c)
        for w in self.hooks.power_watchers:
            w.power_changed(c)

    def request_pass(self, c: int) -> None:
        self._dirty.add(c)
        if not self._pass_pending:
            self._pass_pending = True
            env = self.env
            if self._in_handler and env.peek() > env.now:
                # No other event is due now, so a zero-delay pass event would be the very next one SimPy runs
                # (events this handler schedules from here on come after it): run it inline at the handler's
                # end instead, in the same order, without an event.
                self._pass_inline = True
            else:
                call_later(env, 0.0, self._on_pass_event)

    def route_and_enqueue(self, job: Job, allowed: tuple[int, ...]) -> None:
        c = allowed[0] if len(allowed) == 1 else self._route(job, allowed)
        self.enqueue(job, c)

    def enqueue(self, job: Job, c: int) -> None:
        f = self.facility
        job.cluster = c
        for obs in self._observers:
            obs.on_enqueue(job, c)
        key = self._scheduler.order_key(job)
        keys = f.queue_keys[c]
        if not keys or not key < keys[-1]:  # the common case: behind every waiting job (bisect_right's place)
            keys.append(key)
            f.queues[c].append(job)
        else:
            pos = bisect.bisect_right(keys, key)
            keys.insert(pos, key)
            f.queues[c].insert(pos, job)
        f.queued_gpus[c] += job.gpus
        f.n_queued += 1
        f.set_counts()
        self.request_pass(c)

    def start(self, job: Job, c: int) -> None:
        f = self.facility
        now = self.env.now
        queue = f.queues[c]
        i = 0 if queue[0] is job else self._queue_index(job, c)  # (the head, in the common case)
        del queue[i]
        del f.queue_keys[c][i]
        f.queued_gpus[c] -= job.gpus
        f.n_queued -= 1
        self._place(job, c, now)

    def _place(self, job: Job, c: int, now: float, alloc: Allocation | None = None) -> None:
        """Start ``job`` (out of the queue) on cluster ``c``: its GPUs (``alloc``, or allocated here), its speed
        group, its records."""
        f = self.facility
        st = f.clusters[c]
        if alloc is None:
            alloc = st.allocate(job.gpus)
        job.alloc = alloc
        job.gpus_held = alloc[0][1] if len(alloc) == 1 else len(alloc) * st.gpus_per_node  # (gangs: whole nodes)
        group = f.groups[c][job.load]
        group.advance(now)
        job.group = group
        job.e_start_j = group.e_gpu_j
        if job.start_s < 0.0:  # its first start (a restarted job keeps its first start time)
            f.rec_start_s[job.idx] = now
        job.start_s = now
        f.rec_cluster[job.idx] = c
        f.rec_state[job.idx] = RUNNING
        f.n_running += 1
        for obs in self._observers:
            obs.on_start(job, group, now)
        if group.add(job):
            self._schedule_completion(group)

    def stop(self, job: Job, outcome: Outcome, cause: str = "") -> float:
        lost_s = self._stop(job, outcome, cause, self.env.now)
        self.facility.set_counts()
        return lost_s

    def _stop(self, job: Job, outcome: Outcome, cause: str, now: float) -> float:
        """:meth:`stop` without the queue counts (completions set them once for all jobs due)."""
        f = self.facility
        group = job.group
        assert group is not None
        c = job.cluster
        i = job.idx
        completed = outcome == "completed"
        if not completed:
            group.advance(now)  # (a completing job's group was advanced by its completion)
        run_j = self.job_energy_j(job, now)
        f.rec_energy_j[i] += run_j
        work_s, lost_s = job.work_s, 0.0
        if not completed:
            rule = self.hooks.restart_rule
            if rule is not None:
                work_s, lost_s = rule.remaining(job, outcome, now)
            elif outcome == "suspended" or outcome == "migrated":
                work_s = max(job.v_finish - group.v, 0.0)
            else:
                lost_s = now - job.start_s
        for obs in self._observers:
            obs.on_stop(job, outcome, cause, run_j)
        if not completed:  # completed jobs have left their group already (SpeedGroup.due)
            f.views[c].disruptions += 1  # a running job left early: schedulers' reservations are stale
            first = group.running[0][2] is job
            group.remove(job)
            if first:
                self._schedule_completion(group)
        f.clusters[c].release(job.alloc)
        job.alloc = []
        job.group = None
        f.n_running -= 1
        if outcome == "suspended" or outcome == "interrupted":
            job.work_s = work_s
            f.rec_state[i] = QUEUED
            self.enqueue(job, c)
        elif outcome == "migrated":
            job.work_s = work_s
            f.rec_state[i] = MIGRATED
            f.rec_end_s[i] = now
        else:
            f.rec_state[i] = COMPLETED if completed else FAILED
            f.rec_end_s[i] = now
            job.extra_s = 0.0
        return lost_s

    def _complete(self, job: Job, now: float) -> None:
        """:meth:`_stop` of a job whose work is done (it has left its group, which was advanced to now): the
        same records, without the branches of the other outcomes."""
        f = self.facility
        i = job.idx
        run_j = self.job_energy_j(job, now)
        f.rec_energy_j[i] += run_j
        for obs in self._observers:
            obs.on_stop(job, "completed", "", run_j)
        f.clusters[job.cluster].release(job.alloc)
        job.alloc = []
        job.group = None
        f.n_running -= 1
        f.rec_state[i] = COMPLETED
        f.rec_end_s[i] = now
        job.extra_s = 0.0

    def set_group_rate(self, group: SpeedGroup, power_w: float, speed: float) -> None:
        group.advance(self.env.now)
        group.gpu_power_w = power_w
        group.speed = speed
        self._schedule_completion(group)
        for obs in self.hooks.rate_observers:
            obs.on_rate_change(group)
        self.facility.views[group.cluster].disruptions += 1  # expected ends moved: reservations are stale

    def job_energy_j(self, job: Job, now_s: float) -> float:
        """IT energy of ``job`` since its (re)start: its GPUs, GPUs it strands, and its share of node power."""
        assert job.group is not None
        f = self.facility
        c = job.cluster
        elapsed = now_s - job.start_s
        gpu_j = job.gpus * (job.group.e_gpu_j - job.e_start_j)
        if job.run is not None:
            gpu_j -= job.run.saving_j(job.gpus, job.group, now_s)
        stranded_j = (job.gpus_held - job.gpus) * f.context_idle_w[c] * elapsed
        node_j = job.gpus_held * f.node_busy_w_per_gpu[c] * elapsed
        return gpu_j + stranded_j + node_j

    # -- arrivals and routing --------------------------------------------------------------------------------
    def _arrivals(self) -> Generator[simpy.Event, Any, None]:
        """Starts the arrivals at the run's start (a process, so the first batch keeps its place among the
        processes started at time 0); each later batch is one timeout per distinct submit time."""
        jobs = self.jobs
        self._submit_s = jobs.submit_s.tolist()
        self._job_gpus = jobs.gpus.tolist()
        self._job_work = jobs.work_s.tolist()
        self._job_prio = jobs.priority.tolist()
        self._job_source = jobs.source_idx.tolist()
        self._arrive(None)
        return
        yield

    def _arrive(self, event: simpy.Event | None) -> None:
        """Submit every job due now, then wait for the next submit time (one event per distinct time)."""
        env = self.env
        now = env.now
        submit = self._submit_s
        n = len(submit)
        i = self._next_arrival
        lone: Job | None = None
        lone_c = -1
        lone_alloc: Allocation | None = None
        if i < n and submit[i] <= now:
            self._in_handler = True
            gpus, work, prio, source = self._job_gpus, self._job_work, self._job_prio, self._job_source
            loads = self.jobs.source_load
            clusters = self._source_clusters
            meter = self.meter
            if now > meter.t_s:
                meter.advance(now)
            f = self.facility
            gates = self._arrival_gates
            while i < n and submit[i] <= now:
                s = source[i]
                job = Job(i, submit[i], gpus[i], work[i], prio[i], loads[s])
                i += 1
                self._next_arrival = i
                self.n_events += 1
                f.n_submitted += 1
                allowed = clusters[s]
                if gates and any(gate.hold(job, allowed) for gate in gates):
                    continue  # a gate holds it (it enqueues the job later)
                c = allowed[0] if len(allowed) == 1 else self._route(job, allowed)
                if (
                    self._lone_starts
                    and not f.queues[c]
                    and not self._pass_pending
                    and (i == n or submit[i] > now)
                    and env.peek() > now
                    and (lone_alloc := f.clusters[c].try_allocate(job.gpus)) is not None
                ):
                    lone, lone_c = job, c  # alone, on an empty queue, and it fits: the pass would start it
                else:
                    self.enqueue(job, c)
        if i < n:  # (a second step when now + (t - now) rounds below t)
            # the next distinct submit time: the wake-up that fired (off SimPy's heap now) is scheduled again
            wake = Wake(env, self._arrive_cbs) if event is None else event
            wake.callbacks = self._arrive_cbs
            env.schedule(wake, NORMAL, submit[i] - now)
        else:  # every job is in: drop the columns (the report is built after the run, in the same process)
            self._submit_s = self._job_gpus = self._job_work = self._job_prio = self._job_source = []
        if lone is not None:
            # The inline pass enqueue() would have asked for, run here, where it would have run: the scheduler
            # declares that a lone queued job starts iff it fits (scheduling.base.starts_lone_job), no observer
            # or gate is told of enqueues, starts or passes, and no other event is due now.
            self.n_events += 1
            lone.cluster = lone_c
            self._place(lone, lone_c, now, lone_alloc)
            self.facility.refresh(lone_c)
        if self._in_handler:
            if self._pass_inline:
                self._end_handler()
            else:
                self._in_handler = False  # (no pass made due: what _end_handler would do)

    def submit(self, i: int, submit_s: float, gpus: int, work_s: float, priority: int, s: int) -> None:
        """Submit row ``i`` of the site's job table now, the job of those figures from source ``s`` (a
        federation's placement calls it, between :meth:`begin_submissions` and :meth:`end_submissions`; the
        scheduling pass they make due runs at the end)."""
        job = Job(i, submit_s, gpus, work_s, priority, self.jobs.source_load[s])
        self.n_events += 1
        self.facility.n_submitted += 1
        allowed = self._source_clusters[s]
        if self._arrival_gates and any(gate.hold(job, allowed) for gate in self._arrival_gates):
            return
        self.enqueue(job, allowed[0] if len(allowed) == 1 else self._route(job, allowed))

    def begin_submissions(self) -> None:
        """An outside handler starts submitting jobs now (see :meth:`submit`)."""
        self._in_handler = True
        now = self.env.now
        if now > self.meter.t_s:
            self.meter.advance(now)

    def end_submissions(self) -> None:
        if self._in_handler:
            self._end_handler()

    def _route(self, job: Job, allowed: tuple[int, ...]) -> int:
        """The allowed cluster with the least committed share (allocated + queued GPUs over its size)."""
        f = self.facility
        best, best_score = -1, float("inf")
        for c in allowed:
            st = f.clusters[c]
            if st.total_gpus < job.gpus:
                continue
            score = (st.allocated_gpus + f.queued_gpus[c]) / st.total_gpus
            if score < best_score:
                best, best_score = c, score
        return best

    # -- scheduling passes -----------------------------------------------------------------------------------
    def _end_handler(self) -> None:
        """End of an engine-owned handler: run the pass it made due inline (see :meth:`request_pass`)."""
        while self._pass_inline:
            self._pass_inline = False
            self._run_passes()
        self._in_handler = False

    def _on_pass_event(self, _event: simpy.Event) -> None:
        self._in_handler = True
        self._run_passes()
        self._end_handler()

    def _run_passes(self) -> None:
        self._pass_pending = False
        self.n_events += 1
        now = self.env.now
        meter = self.meter
        if now > meter.t_s:  # (inline after an arrival or a completion, the meter is there already)
            meter.advance(now)
        f = self.facility
        queues = f.queues
        gates = self._gates
        dirty_set = self._dirty
        if len(dirty_set) == 1:
            dirty = [dirty_set.pop()]
            if not gates and not queues[dirty[0]]:
                return  # nothing waits and no gate is told: the pass has nothing to do
        else:
            dirty = sorted(dirty_set)
            dirty_set.clear()
        select = self._scheduler.select
        for c in dirty:
            if not queues[c]:
                continue
            view = f.views[c]
            view.now_s = now
            started = False
            for job in select(view):
                if gates and not all(g.admit(job, c) for g in gates):  # type: ignore[arg-type]
                    break  # a gate refuses (its added power does not fit under the cap): stop this pass
                self.start(job, c)  # type: ignore[arg-type]
                started = True
            if started:
                f.refresh(c)
        for gate in gates:
            gate.after_pass(now, dirty)

    def _queue_index(self, job: Job, c: int) -> int:
        """Where a waiting ``job`` is in cluster ``c``'s queue."""
        queue = self.facility.queues[c]
        i = bisect.bisect_left(self.facility.queue_keys[c], self._scheduler.order_key(job))
        while queue[i] is not job:
            i += 1
        return i

    # -- completions -----------------------------------------------------------------------------------------
    def _schedule_completion(self, group: SpeedGroup) -> None:
        timer = group.timer
        assert timer is not None
        if not group.running or group.speed <= 0.0:
            timer.cancel()
            return
        group.advance(self.env.now)
        timer.arm(max((group.running[0][0] - group.v) / group.speed, 0.0))

    def _on_completion(self, group: SpeedGroup) -> None:
        self._in_handler = True
        self.n_events += 1
        now = self.env.now
        meter = self.meter
        if now > meter.t_s:
            meter.advance(now)
        group.advance(now)
        for job in group.due():
            self._complete(job, now)
        running = group.running  # the next completion (_schedule_completion, the group advanced to now already)
        timer = group.timer
        assert timer is not None
        if running and group.speed > 0.0:
            delay_s = (running[0][0] - group.v) / group.speed
            timer.arm(delay_s if delay_s > 0.0 else 0.0)
        else:
            timer.cancel()
        f = self.facility
        c = group.cluster
        f.refresh(c)
        if not f.queues[c] and not self._pass_pending and not self._gates and self.env.peek() > now:
            self.n_events += 1  # the pass request_pass would run inline next has nothing to do (see _run_passes)
            self._in_handler = False
            return
        self.request_pass(c)
        self._end_handler()

    # -- report ticks ----------------------------------------------------------------------------------------
    def _ticks(self) -> Generator[simpy.Event, Any, None]:
        interval = self.scenario.report.interval
        last_s = self.horizon_s - 1e-9 * max(1.0, self.horizon_s)  # the final row is written at the horizon
        k = 1
        while k * interval < last_s:
            yield self.env.timeout(k * interval - self.env.now)
            self._tick()
            k += 1

    def _tick(self) -> None:
        now = self.begin_event()
        f = self.facility
        self.ticks.append((now, self.meter.snapshot(), f.n_queued, f.n_running))
        if self.progress is not None:
            self.progress(now, self.horizon_s)
        collector.pace()

    # -- run -------------------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop the run at its next event (safe to call from a signal handler, once or many times): the run then
        ends at the time reached, with every figure closed there, and :attr:`stopped_at_s` says when."""
        self._switch.request()

    def run(self) -> None:
        self.env.process(self._arrivals())
        self.start_processes()
        with collector.paced():  # (garbage collection paced to the heap: sim/collector.py)
            self.env.run(until=self.horizon_s)
        self.finish_run(self._switch.end_s())

    def start_processes(self) -> None:
        """Start the report ticks and the features' processes (the arrivals are :meth:`run`'s, or outside)."""
        self.env.process(self._ticks())
        for p in self.hooks.processes:
            p.start()

    def finish_run(self, now: float) -> None:
        """Close every figure at ``now``, the time reached (earlier than the horizon after a stop)."""
        if now < self.horizon_s:
            self.stopped_at_s = now
        self.horizon_s = now
        if self.ticks[-1][0] >= now and now > 0:
            self.ticks.pop()  # a report tick at the time reached: the final row below replaces it
        self.meter.advance(now)
        for groups in self.facility.groups:
            for g in groups.values():
                g.advance(now)
                for _, _, job in g.running:
                    self.facility.rec_energy_j[job.idx] += self.job_energy_j(job, now)
        for p in self.hooks.processes:
            p.finish(now)
        self._tick()
