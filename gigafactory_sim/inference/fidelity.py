"""How a service's requests are served, at one of two fidelities behind one Protocol, chosen by ``fidelity``.

- ``fluid``: M/G/c-style rates per control segment (:mod:`.fluid`); a segment is closed whenever the set of
  serving replicas changes and at every control tick, so served requests and energy integrate exactly.
- ``discrete``: every request, batched step by step on its replica (:mod:`.discrete`); power changes at every
  step.

The service runtime (:mod:`.service`) owns the replicas and the autoscaler and asks its fidelity only what
depends on it. A new fidelity is one class implementing :class:`Serving` and one entry in :data:`FIDELITIES`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import simpy

from gigafactory_sim.inference.bursts import size_biased_group
from gigafactory_sim.inference.demand import TraceDemand
from gigafactory_sim.inference.discrete import DiscreteReplica, DiscreteService
from gigafactory_sim.inference.fluid import FluidService, Plan
from gigafactory_sim.inference.prepare import PreparedService

__all__ = ["FIDELITIES", "DiscreteServing", "FluidServing", "Serving", "build_serving"]

ExpectedFn = Callable[[float, float], float]
"""``expected(t0_s, t1_s)``: requests the demand brings in ``[t0_s, t1_s)``."""


class Serving(Protocol):
    def backlog(self) -> float:
        """Requests waiting now."""
        ...

    def arrived(self) -> float:
        """Requests arrived so far."""
        ...

    def tick(self, now_s: float, interval_s: float) -> tuple[float, float | None]:
        """At a control tick: (requests seen over the last interval, served rate to meter or None)."""
        ...

    def segment_break(self, now_s: float) -> None:
        """The serving replicas are about to change (a replica finished loading, the run ends)."""
        ...

    def replan(self, now_s: float, rate_per_s: float, serving: dict[int, int], span_s: float) -> float | None:
        """A new segment starts with ``serving`` replicas per cluster; returns the served rate to meter, if
        known ahead."""
        ...

    def add_replica(self, c: int, on_drained: Callable[[DiscreteReplica], None]) -> DiscreteReplica | None: ...

    def retire(self, replica: DiscreteReplica | None) -> bool:
        """Take a replica out of service; True if it releases its GPUs later (``on_drained``)."""
        ...

    def serving_gpu_w(self, c: int, n_serving: int, gpus_per_replica: int) -> float:
        """GPU power of the serving replicas on cluster ``c`` now."""
        ...

    def finish(self) -> None: ...

    def stats(self) -> dict[str, Any]:
        """served, rejected, late, prompt and output tokens, and the latency figures, for the summary."""
        ...


class FluidServing:
    def __init__(
        self,
        env: simpy.Environment,
        p: PreparedService,
        expected: ExpectedFn,
        on_power: Callable[[int, float], None],
        rng: np.random.Generator,
        horizon_s: float,
        start: datetime,
    ) -> None:
        svc = p.svc
        self.mix = p.mix
        self.prompt_mean = p.raw_prompt_mean or p.mix.prompt_mean
        self.expected = expected
        self.fluid = FluidService(
            p.models,
            p.mix,
            p.prompt,
            p.output,
            svc.slo.limits(),
            svc.batching,
            svc.queue_timeout,
            step_queue=svc.fluid.step_queue,
            group=size_biased_group(p.trace.base_s) if p.trace is not None else 1.0,
        )
        self.blocks = p.blocks  # block-hash prefix cache: its replay's hit rate is in the mix
        self.resolution_s = svc.fluid.resolution if svc.fluid.step_queue and p.trace is not None else None
        self.trace = p.trace
        self._last_cells: tuple[tuple[float, float], np.ndarray] | None = None
        self.plan: Plan | None = None
        self.seg_start = 0.0

    def backlog(self) -> float:
        return self.fluid.backlog_requests()

    def arrived(self) -> float:
        return self.fluid.arrived

    def _cells(self, t0_s: float, t1_s: float) -> np.ndarray | None:
        """Arrivals in cells of ``resolution`` over ``[t0, t1)`` (trace demand with ``fluid.step_queue``)."""
        if self.resolution_s is None or t1_s <= t0_s:
            return None
        if self._last_cells is not None and self._last_cells[0] == (t0_s, t1_s):
            return self._last_cells[1]  # a segment planned whole is accounted over the same cells
        edges = np.linspace(t0_s, t1_s, max(round((t1_s - t0_s) / self.resolution_s), 1) + 1)
        cells = self.trace.counts_between(edges) if self.trace is not None else np.zeros(len(edges) - 1)
        cells.flags.writeable = False
        self._last_cells = ((t0_s, t1_s), cells)
        return cells

    def segment_break(self, now_s: float) -> None:
        if self.plan is not None and now_s > self.seg_start:
            arrivals = self.expected(self.seg_start, now_s)
            self.fluid.account(self.plan, self.seg_start, now_s, arrivals, self._cells(self.seg_start, now_s))
        self.seg_start = now_s

    def tick(self, now_s: float, interval_s: float) -> tuple[float, float | None]:
        self.segment_break(now_s)
        return self.expected(now_s - interval_s, now_s), None

    def replan(self, now_s: float, rate_per_s: float, serving: dict[int, int], span_s: float) -> float | None:
        self.plan = self.fluid.plan(rate_per_s, serving, span_s, self._cells(now_s, now_s + span_s))
        self.seg_start = now_s
        return self.plan.rate_per_s

    def add_replica(self, c: int, on_drained: Callable[[DiscreteReplica], None]) -> DiscreteReplica | None:
        return None

    def retire(self, replica: DiscreteReplica | None) -> bool:
        return False

    def serving_gpu_w(self, c: int, n_serving: int, gpus_per_replica: int) -> float:
        return n_serving * gpus_per_replica * self.plan.gpu_power_w(c) if self.plan is not None else 0.0

    def finish(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        f = self.fluid
        latency: dict[str, Any] = dict(f.summary())
        latency.pop("mean_wait_s", None)
        latency["estimated"] = True
        out = {
            "served": f.served,
            "rejected": f.rejected,
            "late": f.late,
            "prompt_tokens": f.served * self.prompt_mean,
            "output_tokens": f.served * self.mix.output_mean,
            "latency": latency,
        }
        if self.blocks is not None:
            out["prefix_cache"] = self.blocks.summary()
        return out


class DiscreteServing:
    def __init__(
        self,
        env: simpy.Environment,
        p: PreparedService,
        expected: ExpectedFn,
        on_power: Callable[[int, float], None],
        rng: np.random.Generator,
        horizon_s: float,
        start: datetime,
    ) -> None:
        svc = p.svc
        self.slo = svc.slo.limits()
        self._on_power = on_power
        self.gpu_w: dict[int, float] = {}  # serving replicas' GPU power per cluster, step by step
        b = p.blocks  # block-hash prefix cache, if any
        self.blocks = b
        self.discrete = DiscreteService(
            env,
            p.models,
            p.mix,
            svc.batching,
            svc.queue_timeout,
            on_power=self._power,
            prefix_block_size=b.block_size if b else 0,
            prefix_capacity_blocks=b.capacity_blocks if b else None,
        )
        self.arrived_at_tick = 0
        self.done_at_tick = 0
        if p.trace is not None:
            self.discrete.feed(*p.trace.materialise(), hashes=p.trace.materialise_hashes() if b else None)
        else:
            assert svc.prompt_tokens is not None and svc.output_tokens is not None
            assert not isinstance(svc.demand, TraceDemand)
            t = svc.demand.arrival_times_s(rng, horizon_s, start)
            self.discrete.feed(t, svc.prompt_tokens.sample(rng, len(t)), svc.output_tokens.sample(rng, len(t)))

    def _power(self, c: int, delta_w: float) -> None:
        self.gpu_w[c] = self.gpu_w.get(c, 0.0) + delta_w
        self._on_power(c, delta_w)

    def backlog(self) -> float:
        return float(len(self.discrete.queue))

    def arrived(self) -> float:
        return float(self.discrete.arrived)

    def segment_break(self, now_s: float) -> None:
        return None

    def tick(self, now_s: float, interval_s: float) -> tuple[float, float | None]:
        d = self.discrete
        seen = d.arrived - self.arrived_at_tick
        self.arrived_at_tick = d.arrived
        done = len(d.done)
        served = (done - self.done_at_tick) / interval_s
        self.done_at_tick = done
        return seen, served

    def replan(self, now_s: float, rate_per_s: float, serving: dict[int, int], span_s: float) -> float | None:
        return None

    def add_replica(self, c: int, on_drained: Callable[[DiscreteReplica], None]) -> DiscreteReplica | None:
        return self.discrete.add_replica(c, on_drained=on_drained)

    def retire(self, replica: DiscreteReplica | None) -> bool:
        if replica is None:
            return False
        self.discrete.retire(replica)  # releases when drained
        return True

    def serving_gpu_w(self, c: int, n_serving: int, gpus_per_replica: int) -> float:
        return self.gpu_w.get(c, 0.0)

    def finish(self) -> None:
        self.discrete.flush_energy()

    def stats(self) -> dict[str, Any]:
        rec = self.discrete.records()
        slo = self.slo
        ttft = rec[:, 1] - rec[:, 0]
        e2e = rec[:, 2] - rec[:, 0]
        out = rec[:, 4]
        tpot = np.where(out > 1, (rec[:, 2] - rec[:, 1]) / np.maximum(out - 1, 1), 0.0)
        ok = (ttft <= slo.ttft_s) & (e2e <= slo.e2e_s) & (tpot <= slo.tpot_s)
        served = len(rec)
        extra = {"prefix_cache": self.blocks.summary(self.discrete.prefix_measured())} if self.blocks else {}
        stats = {
            "served": float(served),
            "rejected": float(self.discrete.rejected),
            "late": float((~ok).sum()),
            "prompt_tokens": float(rec[:, 3].sum()),
            "output_tokens": float(out.sum()),
            "latency": {
                "mean_ttft_s": float(ttft.mean()) if served else None,
                "mean_tpot_s": float(tpot[out > 1].mean()) if (out > 1).any() else None,
                "mean_e2e_s": float(e2e.mean()) if served else None,
                "ttft_p50_s": _pct(ttft, 50),
                "ttft_p99_s": _pct(ttft, 99),
                "e2e_p50_s": _pct(e2e, 50),
                "e2e_p90_s": _pct(e2e, 90),
                "e2e_p99_s": _pct(e2e, 99),
                "estimated": False,
            },
        }
        stats.update(extra)
        return stats


def _pct(x: np.ndarray, q: float) -> float | None:
    return float(np.percentile(x, q)) if len(x) else None


FIDELITIES: dict[str, Callable[..., Serving]] = {"fluid": FluidServing, "discrete": DiscreteServing}
"""The serving fidelities by name (a service's ``fidelity``)."""


def build_serving(
    env: simpy.Environment,
    p: PreparedService,
    expected: ExpectedFn,
    on_power: Callable[[int, float], None],
    rng: np.random.Generator,
    horizon_s: float,
    start: datetime,
) -> Serving:
    """The service's fidelity; ``on_power(c, delta_w)`` hears every step's power change (discrete), ``rng``
    draws its requests when no trace gives them."""
    return FIDELITIES[p.svc.fidelity](env, p, expected, on_power, rng, horizon_s, start)
