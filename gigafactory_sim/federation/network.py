"""Data transfers between sites: each direction of a link is a fluid pipe shared fairly by its transfers.

Rates change only when a transfer starts or ends; between those instants each of the ``n`` active transfers on a
pipe moves ``bandwidth / n`` bytes per second, so its completion time is exact (processor sharing, integrated in
virtual time as for the engine's speed groups: ``v`` is the bytes any one active transfer has received since the
pipe was created; a transfer of ``size`` started at ``v0`` has its last byte sent at ``v = v0 + size``). The last
byte then arrives one way-latency later. One re-armable timer per pipe; no process per transfer.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import simpy

from gigafactory_sim.federation.config import Link
from gigafactory_sim.sim.timer import Timer

__all__ = ["BYTES_PER_GB", "Network", "Pipe", "Transfer"]

BYTES_PER_GB = 1e9
BITS_PER_BYTE = 8.0


@dataclass(slots=True)
class Transfer:
    """One transfer: ``size_gb`` from site ``src`` to site ``dst``; ``done(transfer)`` is called on arrival (and
    then dropped: the transfer stays as a record, without the callback and what it holds)."""

    src: int
    dst: int
    size_gb: float
    done: Callable[[Transfer], None] | None
    egress_eur: float = 0.0
    start_s: float = 0.0
    sent_s: float = -1.0  # when its last byte left (then it arrives latency_s later)
    end_s: float = -1.0
    v_finish: float = field(default=0.0, repr=False)


class Pipe:
    """One direction of a link: ``bandwidth_bps`` bytes per second shared fairly, then ``latency_s``."""

    def __init__(self, env: simpy.Environment, bandwidth_bytes_per_s: float, latency_s: float) -> None:
        self.env = env
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self.latency_s = latency_s
        self.v = 0.0
        self.t_s = 0.0
        self.active: list[tuple[float, int, Transfer]] = []  # heap on v_finish, then start order
        self._seq = 0
        self.timer = Timer(env, self._on_sent)
        self.busy_s = 0.0  # time with at least one transfer sending
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
        size = transfer.size_gb * BYTES_PER_GB
        transfer.start_s = now
        transfer.v_finish = self.v + size
        heapq.heappush(self.active, (transfer.v_finish, self._seq, transfer))
        self._seq += 1
        self._arm()

    def _arm(self) -> None:
        if not self.active:
            self.timer.cancel()
            return
        left = max(self.active[0][0] - self.v, 0.0)
        self.timer.arm(left * len(self.active) / self.bandwidth_bytes_per_s)

    def _on_sent(self) -> None:
        now = self.env.now
        self.advance(now)
        eps = 1e-9 * max(1.0, abs(self.v))  # transfers due now (rounding of the timer's delay)
        while self.active and self.active[0][0] <= self.v + eps:
            _, _, tr = heapq.heappop(self.active)
            tr.sent_s = now
            self.bytes_sent += tr.size_gb * BYTES_PER_GB
            if self.latency_s > 0.0:
                self.env.timeout(self.latency_s).callbacks.append(partial(self._arrive_event, tr))
            else:
                self._arrive(tr)
        self._arm()

    def _arrive_event(self, tr: Transfer, _event: simpy.Event) -> None:
        self._arrive(tr)

    def _arrive(self, tr: Transfer) -> None:
        tr.end_s = self.env.now
        done, tr.done = tr.done, None
        assert done is not None
        done(tr)


class Network:
    """The pipes of every link (two per link, one each way) and the transfers' books."""

    def __init__(self, env: simpy.Environment, site_names: list[str], links: list[Link]) -> None:
        self.env = env
        index = {n: k for k, n in enumerate(site_names)}
        self.pipes: dict[tuple[int, int], Pipe] = {}
        self.links: dict[tuple[int, int], Link] = {}
        for link in links:
            a, b = index[link.between[0]], index[link.between[1]]
            for src, dst in ((a, b), (b, a)):
                bw = link.bandwidth_gbps * 1e9 / BITS_PER_BYTE
                self.pipes[src, dst] = Pipe(env, bw, link.latency_ms / 1000.0)
                self.links[src, dst] = link
        self.transfers: list[Transfer] = []

    def has_link(self, src: int, dst: int) -> bool:
        return (src, dst) in self.pipes

    def alone_s(self, src: int, dst: int, size_gb: float) -> float:
        """How long ``size_gb`` takes from ``src`` to ``dst`` with the pipe to itself: size / bandwidth + latency."""
        if size_gb <= 0.0 or src == dst:
            return 0.0
        pipe = self.pipes[src, dst]
        return size_gb * BYTES_PER_GB / pipe.bandwidth_bytes_per_s + pipe.latency_s

    def estimate_s(self, src: int, dst: int, size_gb: float) -> float:
        """The transfer time if the transfers now on the pipe kept their share: ``(n + 1)`` x alone (an upper
        estimate for placement; the real time follows from the fluid model)."""
        if size_gb <= 0.0 or src == dst:
            return 0.0
        pipe = self.pipes[src, dst]
        return size_gb * BYTES_PER_GB * (len(pipe.active) + 1) / pipe.bandwidth_bytes_per_s + pipe.latency_s

    def egress_eur(self, src: int, dst: int, size_gb: float) -> float:
        if size_gb <= 0.0 or src == dst:
            return 0.0
        return size_gb * self.links[src, dst].egress_eur_per_gb

    def send(self, src: int, dst: int, size_gb: float, done: Callable[[Transfer], None]) -> Transfer:
        """Start moving ``size_gb`` from ``src`` to ``dst``; ``done(transfer)`` is called when it has arrived."""
        tr = Transfer(src, dst, size_gb, done, egress_eur=self.egress_eur(src, dst, size_gb))
        self.transfers.append(tr)
        self.pipes[src, dst].start(tr)
        return tr

    def finish(self, now_s: float) -> None:
        for pipe in self.pipes.values():
            pipe.advance(now_s)
