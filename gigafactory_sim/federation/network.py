"""Data transfers between sites: each direction of a link is a fluid pipe shared fairly by its transfers.

Rates change only when a transfer starts or ends; between those instants each of the ``n`` active transfers on a
pipe moves ``bandwidth / n`` bytes per second, so its completion time is exact (processor sharing, integrated in
virtual time as for the engine's speed groups: ``v`` is the bytes any one active transfer has received since the
pipe was created; a transfer of ``size`` started at ``v0`` has its last byte sent at ``v = v0 + size``). The last
byte then arrives one way-latency later.

One SimPy event per arrival, not per send: the instant the head of a pipe sends its last byte follows from the
shares alone, so a pipe handles its sends when it is next touched (a start, a read of its share, an arrival),
each at its own instant and with the arithmetic a timer at that instant would have done; only the arrival, one
latency later, wakes it. One re-armable timer per pipe, armed at the next arrival as the shares stand (a start
that delays it leaves the earlier wake-up in place, which then re-arms); no process per transfer.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import simpy

from gigafactory_sim.federation.config import Link
from gigafactory_sim.sim.timer import Timer

__all__ = ["BYTES_PER_GB", "Network", "Pipe", "Transfer", "TransferLog"]

BYTES_PER_GB = 1e9
BITS_PER_BYTE = 8.0


@dataclass(slots=True)
class Transfer:
    """One transfer: ``size_gb`` from site ``src`` to site ``dst``; ``done(transfer)`` is called on arrival (and
    then dropped). ``job``: the sender's key for it (-1: none); ``row``: its row in the network's
    :class:`TransferLog` (-1: none)."""

    src: int
    dst: int
    size_gb: float
    done: Callable[[Transfer], None] | None
    egress_eur: float = 0.0
    job: int = -1
    row: int = -1
    start_s: float = 0.0
    sent_s: float = -1.0  # when its last byte left (then it arrives latency_s later)
    end_s: float = -1.0
    v_finish: float = field(default=0.0, repr=False)


class TransferLog:
    """Every transfer's figures, a column each, in the order they started: lists of numbers, so that the
    collector does not walk an object per transfer through the run (arrival times are -1 until they arrive)."""

    __slots__ = ("dst", "egress_eur", "end_s", "size_gb", "src", "start_s")

    def __init__(self) -> None:
        self.src: list[int] = []
        self.dst: list[int] = []
        self.size_gb: list[float] = []
        self.egress_eur: list[float] = []
        self.start_s: list[float] = []
        self.end_s: list[float] = []

    def __len__(self) -> int:
        return len(self.src)

    def add(self, tr: Transfer) -> int:
        """Log ``tr`` (started); its row."""
        self.src.append(tr.src)
        self.dst.append(tr.dst)
        self.size_gb.append(tr.size_gb)
        self.egress_eur.append(tr.egress_eur)
        self.start_s.append(tr.start_s)
        self.end_s.append(tr.end_s)
        return len(self.src) - 1


def delay_to(now_s: float, t_s: float) -> float:
    """The delay that SimPy adds to ``now_s`` to land exactly on ``t_s >= now_s`` (its event time is
    ``now + delay``, and ``now + (t - now)`` may round off ``t`` by an ulp when ``now < t / 2``)."""
    d = t_s - now_s
    for _ in range(8):
        if now_s + d < t_s:
            d = math.nextafter(d, math.inf)
        elif now_s + d > t_s:
            d = math.nextafter(d, -math.inf)
        else:
            break
    return d


class Pipe:
    """One direction of a link: ``bandwidth_bps`` bytes per second shared fairly, then ``latency_s``."""

    def __init__(
        self, env: simpy.Environment, bandwidth_bytes_per_s: float, latency_s: float, log: TransferLog | None = None
    ) -> None:
        self.env = env
        self.log = log  # where each arrival is written (by the transfer's row), if anywhere
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self.latency_s = latency_s
        self.v = 0.0
        self.t_s = 0.0
        self.active: list[tuple[float, int, Transfer]] = []  # heap on v_finish, then start order
        self._seq = 0
        self.sent_at_s = math.inf  # when the head of `active` sends its last byte, at the shares now
        self.in_flight: deque[tuple[float, Transfer]] = deque()  # sent, with its arrival time, in send order
        self.timer = Timer(env, self._on_timer)
        self._timer_s = math.inf  # when the timer fires (inf: not armed)
        self._leaving = False  # transfers are leaving and arriving at once (no latency), one after another
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
        if self.sent_at_s <= now and not self._leaving:
            self.catch_up(now)
        self.advance(now)
        size = transfer.size_gb * BYTES_PER_GB
        transfer.start_s = now
        transfer.v_finish = self.v + size
        heapq.heappush(self.active, (transfer.v_finish, self._seq, transfer))
        self._seq += 1
        self._plan(now)
        self._rearm(now)

    def sending(self, now_s: float) -> int:
        """How many transfers are sending at ``now_s`` (the share of a new one would be one over this plus one)."""
        if self.sent_at_s <= now_s and not self._leaving:
            self.catch_up(now_s)
        return len(self.active)

    def catch_up(self, now_s: float) -> None:
        """Handle every send due by ``now_s``, each at its own instant."""
        while self.sent_at_s <= now_s:
            self._send(self.sent_at_s)

    def finish(self, now_s: float) -> None:
        """Bring the pipe to the run's end: the sends before it, then its busy time up to it."""
        while self.sent_at_s < now_s:
            self._send(self.sent_at_s)
        self.advance(now_s)

    def _plan(self, now_s: float) -> None:
        """The head's send time from the shares at ``now_s``."""
        active = self.active
        if active:
            left = max(active[0][0] - self.v, 0.0)
            self.sent_at_s = now_s + left * len(active) / self.bandwidth_bytes_per_s
        else:
            self.sent_at_s = math.inf

    def _send(self, t_s: float, arrive_now: bool = False) -> None:
        """The transfers whose last byte leaves at ``t_s`` (the head's send time) leave, and the next send is
        planned. ``arrive_now``: the timer woke at ``t_s`` and there is no latency, so each arrives as it leaves."""
        self.advance(t_s)
        eps = 1e-9 * max(1.0, abs(self.v))  # transfers due now (rounding of the send time)
        latency = self.latency_s
        active = self.active
        self._leaving = arrive_now  # (while they leave, a start or a read from an arrival must not send again)
        while active and active[0][0] <= self.v + eps:
            _, _, tr = heapq.heappop(active)
            tr.sent_s = t_s
            self.bytes_sent += tr.size_gb * BYTES_PER_GB
            if arrive_now:
                self._arrive(tr)
            else:
                self.in_flight.append((t_s + latency, tr))
        self._leaving = False
        self._plan(t_s)

    def _rearm(self, now_s: float) -> None:
        """Wake at the next arrival as the shares stand, unless already armed for earlier."""
        target = self.in_flight[0][0] if self.in_flight else self.sent_at_s + self.latency_s
        if target < self._timer_s:
            self._timer_s = target
            self.timer.arm(delay_to(now_s, target))

    def _on_timer(self) -> None:
        now = self.env.now
        self._timer_s = math.inf
        flight = self.in_flight
        if self.latency_s > 0.0:
            if self.sent_at_s <= now:
                self.catch_up(now)
            if flight and flight[0][0] <= now:
                _, tr = flight.popleft()
                self._rearm(now)  # (a transfer arriving at this same instant too: its own event, next)
                self._arrive(tr)
                return
        else:  # no latency: what a read handled already arrives now, then each as it leaves, as it is sent
            while flight and flight[0][0] <= now:
                self._arrive(flight.popleft()[1])
            while self.sent_at_s <= now:
                self._send(self.sent_at_s, self.sent_at_s == now)
        self._rearm(now)

    def _arrive(self, tr: Transfer) -> None:
        tr.end_s = now = self.env.now
        if self.log is not None and tr.row >= 0:
            self.log.end_s[tr.row] = now
        done, tr.done = tr.done, None
        assert done is not None
        done(tr)


class Network:
    """The pipes of every link (two per link, one each way) and the transfers' books."""

    def __init__(self, env: simpy.Environment, site_names: list[str], links: list[Link]) -> None:
        self.env = env
        index = {n: k for k, n in enumerate(site_names)}
        self.log = TransferLog()
        self.pipes: dict[tuple[int, int], Pipe] = {}
        self.links: dict[tuple[int, int], Link] = {}
        for link in links:
            a, b = index[link.between[0]], index[link.between[1]]
            for src, dst in ((a, b), (b, a)):
                bw = link.bandwidth_gbps * 1e9 / BITS_PER_BYTE
                self.pipes[src, dst] = Pipe(env, bw, link.latency_ms / 1000.0, self.log)
                self.links[src, dst] = link

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
        n = pipe.sending(self.env.now)
        return size_gb * BYTES_PER_GB * (n + 1) / pipe.bandwidth_bytes_per_s + pipe.latency_s

    def egress_eur(self, src: int, dst: int, size_gb: float) -> float:
        if size_gb <= 0.0 or src == dst:
            return 0.0
        return size_gb * self.links[src, dst].egress_eur_per_gb

    def send(self, src: int, dst: int, size_gb: float, done: Callable[[Transfer], None], job: int = -1) -> Transfer:
        """Start moving ``size_gb`` from ``src`` to ``dst``; ``done(transfer)`` is called when it has arrived
        (``job``: the caller's key, kept on the transfer)."""
        tr = Transfer(src, dst, size_gb, done, egress_eur=self.egress_eur(src, dst, size_gb), job=job)
        self.pipes[src, dst].start(tr)
        tr.row = self.log.add(tr)
        return tr

    def finish(self, now_s: float) -> None:
        for pipe in self.pipes.values():
            pipe.finish(now_s)
