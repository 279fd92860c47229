"""How a disaggregated service's requests are served, at one of two fidelities behind one Protocol (``fidelity``).

- ``fluid``: rates per control segment through both pools (:mod:`.disagg_fluid`).
- ``discrete``: every request, step by step in each pool (:mod:`.disagg_discrete`).

The service runtime (:mod:`.disagg_service`) owns both pools' replicas and autoscalers and asks its fidelity only
what depends on it, as :mod:`.fidelity` does for a colocated service.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import simpy

from gigafactory_sim.inference.demand import TraceDemand
from gigafactory_sim.inference.disagg_discrete import DiscretePools, PoolPowerHook
from gigafactory_sim.inference.disagg_fluid import TwoPoolFluid
from gigafactory_sim.inference.prepare import PreparedService

__all__ = ["DISAGG_FIDELITIES", "DiscretePoolServing", "FluidPoolServing", "PoolServing", "build_pool_serving"]

ExpectedFn = Callable[[float, float], float]


class PoolServing(Protocol):
    def arrived(self) -> float: ...

    def backlog(self, pool: str) -> float:
        """Requests waiting for ``pool`` now."""
        ...

    def tick(self, now_s: float, interval_s: float) -> tuple[float, float | None]:
        """At a control tick: (requests seen over the last interval, served rate to meter or None)."""
        ...

    def segment_break(self, now_s: float) -> None: ...

    def replan(
        self, now_s: float, rate_per_s: float, serving: dict[str, dict[int, int]], span_s: float
    ) -> float | None:
        """A new segment with ``serving[pool][cluster]`` replicas; the served rate to meter, if known ahead."""
        ...

    def add_replica(self, pool: str, c: int, on_drained: Callable[[Any], None]) -> Any: ...

    def retire(self, pool: str, handle: Any) -> bool:
        """Take a replica out of service; True if it releases its GPUs later (``on_drained``)."""
        ...

    def serving_gpu_w(self, pool: str, c: int, n_serving: int, gpus_per_replica: int) -> float: ...

    def finish(self) -> None: ...

    def stats(self) -> dict[str, Any]:
        """The service's figures, as :meth:`.fidelity.Serving.stats` gives them."""
        ...

    def pool_stats(self) -> dict[str, dict[str, Any]]:
        """Per pool: served, rejected, late, latency; the prefill pool's busy replica-seconds."""
        ...

    def transfers(self) -> float: ...

    def moved_bytes(self) -> float:
        """KV-cache bytes moved from the prefill to the decode pool."""
        ...


class FluidPoolServing:
    def __init__(
        self,
        env: simpy.Environment,
        p: PreparedService,
        expected: ExpectedFn,
        on_power: PoolPowerHook,
        rng: np.random.Generator,
        horizon_s: float,
        start: datetime,
    ) -> None:
        assert p.pools is not None
        self.expected = expected
        self.output_mean = p.mix.output_mean
        self.fluid = TwoPoolFluid(
            p.pools, p.svc.slo.limits(), p.output, p.svc.queue_timeout, p.raw_prompt_mean or p.mix.prompt_mean
        )
        self.seg_start = 0.0

    def arrived(self) -> float:
        return self.fluid.prefill.arrived

    def backlog(self, pool: str) -> float:
        return self.fluid.backlog_prefill() if pool == "prefill" else self.fluid.backlog_decode()

    def segment_break(self, now_s: float) -> None:
        if now_s > self.seg_start:
            self.fluid.account(self.seg_start, now_s, self.expected(self.seg_start, now_s))
        self.seg_start = now_s

    def tick(self, now_s: float, interval_s: float) -> tuple[float, float | None]:
        self.segment_break(now_s)
        return self.expected(now_s - interval_s, now_s), None

    def replan(
        self, now_s: float, rate_per_s: float, serving: dict[str, dict[int, int]], span_s: float
    ) -> float | None:
        _, plan_d = self.fluid.plan(rate_per_s, serving["prefill"], serving["decode"], span_s)
        self.seg_start = now_s
        return plan_d.rate_per_s

    def add_replica(self, pool: str, c: int, on_drained: Callable[[Any], None]) -> Any:
        return None

    def retire(self, pool: str, handle: Any) -> bool:
        return False

    def serving_gpu_w(self, pool: str, c: int, n_serving: int, gpus_per_replica: int) -> float:
        per_gpu = self.fluid.prefill_gpu_w(c) if pool == "prefill" else self.fluid.decode_gpu_w(c)
        return n_serving * gpus_per_replica * per_gpu

    def finish(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        f = self.fluid
        served = f.decode.served
        return {
            "served": served,
            "rejected": f.prefill.queue.rejected + f.decode.rejected,
            "late": served * f.late_share(),
            "prompt_tokens": served * f.prompt_mean,
            "output_tokens": served * self.output_mean,
            "latency": f.latency(),
        }

    def pool_stats(self) -> dict[str, dict[str, Any]]:
        p, d = self.fluid.prefill, self.fluid.decode
        ds = d.summary()
        return {
            "prefill": {
                "served": p.served,
                "rejected": p.queue.rejected,
                "late": p.late,
                "busy_replica_s": p.busy_replica_s,
                "latency": {
                    "mean_wait_s": p.wait_sum / p.served if p.served else None,
                    "mean_ttft_s": p.ttft_sum / p.served if p.served else None,
                    "ttft_p50_s": p.ttft_hist.quantile(0.5),
                    "ttft_p99_s": p.ttft_hist.quantile(0.99),
                },
            },
            "decode": {
                "served": d.served,
                "rejected": d.rejected,
                "late": d.late,
                "latency": {
                    "mean_wait_s": ds["mean_wait_s"],
                    "mean_tpot_s": ds["mean_tpot_s"],
                    "mean_e2e_s": ds["mean_e2e_s"],
                    "e2e_p99_s": ds["e2e_p99_s"],
                },
            },
        }

    def transfers(self) -> float:
        return self.fluid.handed

    def moved_bytes(self) -> float:
        return self.fluid.handed * self.fluid.pools.kv_bytes_per_request


def _pct(x: np.ndarray, q: float) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.percentile(x, q)) if len(x) else None


def _mean(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else None


class DiscretePoolServing:
    def __init__(
        self,
        env: simpy.Environment,
        p: PreparedService,
        expected: ExpectedFn,
        on_power: PoolPowerHook,
        rng: np.random.Generator,
        horizon_s: float,
        start: datetime,
    ) -> None:
        svc, pools = p.svc, p.pools
        assert pools is not None and svc.disaggregation is not None
        self.slo = svc.slo.limits()
        hit = (svc.prefix_cache.hit_rate or 0.0) if svc.prefix_cache is not None else 0.0
        self.pools = DiscretePools(
            env,
            pools.prefill,
            pools.decode,
            pools.decode_mix,
            svc.disaggregation.kv_link,
            svc.model.kv_bytes,
            hit,
            self.slo,
            svc.queue_timeout,
            on_power,
        )
        self.arrived_at_tick = 0
        self.done_at_tick = 0
        if p.trace is not None:
            times, prompt, output = p.trace.materialise()
        else:
            assert svc.prompt_tokens is not None and svc.output_tokens is not None
            assert not isinstance(svc.demand, TraceDemand)
            times = svc.demand.arrival_times_s(rng, horizon_s, start)
            prompt, output = svc.prompt_tokens.sample(rng, len(times)), svc.output_tokens.sample(rng, len(times))
        self.pools.prefill.feed(times, prompt, output)

    def arrived(self) -> float:
        return float(self.pools.prefill.arrived)

    def backlog(self, pool: str) -> float:
        return float(len(self.pools.prefill.queue if pool == "prefill" else self.pools.decode.queue))

    def segment_break(self, now_s: float) -> None:
        return None

    def tick(self, now_s: float, interval_s: float) -> tuple[float, float | None]:
        arrived = self.pools.prefill.arrived
        seen = arrived - self.arrived_at_tick
        self.arrived_at_tick = arrived
        done = len(self.pools.decode.done)
        served = (done - self.done_at_tick) / interval_s
        self.done_at_tick = done
        return float(seen), served

    def replan(
        self, now_s: float, rate_per_s: float, serving: dict[str, dict[int, int]], span_s: float
    ) -> float | None:
        return None

    def add_replica(self, pool: str, c: int, on_drained: Callable[[Any], None]) -> Any:
        if pool == "prefill":
            return self.pools.prefill.add_replica(c, on_drained)
        return self.pools.decode.add_replica(c, on_drained=on_drained)

    def retire(self, pool: str, handle: Any) -> bool:
        if handle is None:
            return False
        if pool == "prefill":
            self.pools.prefill.retire(handle)
        else:
            self.pools.decode.retire(handle)
        return True

    def serving_gpu_w(self, pool: str, c: int, n_serving: int, gpus_per_replica: int) -> float:
        return self.pools.gpu_w[pool].get(c, 0.0)

    def finish(self) -> None:
        self.pools.decode.flush_energy()

    def _latency(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        j = self.pools.joined()
        out = j["output"]
        tpot = np.where(out > 1, (j["end"] - j["decode_first"]) / np.maximum(out - 1, 1), 0.0)
        return j, tpot

    def stats(self) -> dict[str, Any]:
        j, tpot = self._latency()
        slo = self.slo
        ttft = j["first"] - j["arrival"]
        e2e = j["end"] - j["arrival"]
        out = j["output"]
        ok = (ttft <= slo.ttft_s) & (e2e <= slo.e2e_s) & (tpot <= slo.tpot_s)
        served = len(out)
        return {
            "served": float(served),
            "rejected": float(self.pools.prefill.rejected + self.pools.decode.rejected),
            "late": float((~ok).sum()),
            "prompt_tokens": float(j["prompt"].sum()),
            "output_tokens": float(out.sum()),
            "latency": {
                "mean_ttft_s": _mean(ttft),
                "mean_tpot_s": _mean(tpot[out > 1]),
                "mean_e2e_s": _mean(e2e),
                "ttft_p50_s": _pct(ttft, 50),
                "ttft_p99_s": _pct(ttft, 99),
                "e2e_p50_s": _pct(e2e, 50),
                "e2e_p90_s": _pct(e2e, 90),
                "e2e_p99_s": _pct(e2e, 99),
                "estimated": False,
            },
        }

    def pool_stats(self) -> dict[str, dict[str, Any]]:
        pre = self.pools.prefill.records()
        ttft = pre[:, 2] - pre[:, 0]
        j, tpot = self._latency()
        out = j["output"]
        dec_e2e = j["end"] - j["first"]  # from the first token (the handover) to the last
        slo = self.slo
        return {
            "prefill": {
                "served": float(len(pre)),
                "rejected": float(self.pools.prefill.rejected),
                "late": float((ttft > slo.ttft_s).sum()),
                "busy_replica_s": self.pools.prefill.busy_replica_s,
                "latency": {
                    "mean_wait_s": _mean(pre[:, 1] - pre[:, 0]),
                    "mean_ttft_s": _mean(ttft),
                    "ttft_p50_s": _pct(ttft, 50),
                    "ttft_p99_s": _pct(ttft, 99),
                },
            },
            "decode": {
                "served": float(len(out)),
                "rejected": float(self.pools.decode.rejected),
                "late": float(((tpot > slo.tpot_s) | (j["end"] - j["arrival"] > slo.e2e_s)).sum()),
                "latency": {
                    "mean_wait_s": _mean(j["decode_first"] - j["first"]),  # handover to its first decode step
                    "mean_tpot_s": _mean(tpot[out > 1]),
                    "mean_e2e_s": _mean(dec_e2e),
                    "e2e_p99_s": _pct(dec_e2e, 99),
                },
            },
        }

    def transfers(self) -> float:
        return float(self.pools.handed)

    def moved_bytes(self) -> float:
        return self.pools.moved_bytes


DISAGG_FIDELITIES: dict[str, Callable[..., PoolServing]] = {"fluid": FluidPoolServing, "discrete": DiscretePoolServing}
"""The fidelities of a disaggregated service by name (its ``fidelity``)."""


def build_pool_serving(
    env: simpy.Environment,
    p: PreparedService,
    expected: ExpectedFn,
    on_power: PoolPowerHook,
    rng: np.random.Generator,
    horizon_s: float,
    start: datetime,
) -> PoolServing:
    return DISAGG_FIDELITIES[p.svc.fidelity](env, p, expected, on_power, rng, horizon_s, start)
