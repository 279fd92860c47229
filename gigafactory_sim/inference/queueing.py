"""Queueing formulas for the fluid model and for tests of the discrete model (../shared/REFERENCES.md,
Queueing).

M/M/c: Erlang-C probability of waiting ``C(c, a)`` with offered load ``a = lam / mu``; mean wait
``Wq = C / (c*mu - lam)``; ``P(W > x) = C * exp(-(c*mu - lam) * x)``. M/G/c (Allen-Cunneen):
``Wq ~= Wq(M/M/c) * (Ca^2 + Cs^2) / 2``. For ``c`` above :data:`EXACT_MAX_SERVERS` the Halfin-Whitt
approximation ``C ~= 1 / (1 + beta * Phi(beta) / phi(beta))``, ``beta = (c - a) / sqrt(a)``, replaces the
exact
recursion (a replica batching thousands of requests is thousands of servers).
"""

from __future__ import annotations

import math
from collections import deque

__all__ = [
    "allen_cunneen_wait_s",
    "drain_cohorts",
    "erlang_c",
    "fluid_segment",
    "mmc_wait_s",
    "wait_exceeds_probability",
]

EXACT_MAX_SERVERS = 2000


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with offered load ``a`` (1 if ``a >= c``)."""
    if c <= 0 or a >= c:
        return 1.0
    if a <= 0.0:
        return 0.0
    if c <= EXACT_MAX_SERVERS:
        b = 1.0  # Erlang-B by the stable recursion B(k) = a B(k-1) / (k + a B(k-1))
        for k in range(1, c + 1):
            b = a * b / (k + a * b)
        rho = a / c
        return b / (1.0 - rho * (1.0 - b))
    beta = (c - a) / math.sqrt(a)
    phi = math.exp(-0.5 * beta * beta) / math.sqrt(2.0 * math.pi)
    big_phi = 0.5 * (1.0 + math.erf(beta / math.sqrt(2.0)))
    if phi <= 0.0:
        return 0.0
    return 1.0 / (1.0 + beta * big_phi / phi)


def mmc_wait_s(c: int, lam: float, mean_service_s: float) -> float:
    """Mean wait in queue of M/M/c (``inf`` when unstable)."""
    if lam <= 0.0:
        return 0.0
    mu = 1.0 / mean_service_s
    if lam >= c * mu:
        return float("inf")
    return erlang_c(c, lam / mu) / (c * mu - lam)


def allen_cunneen_wait_s(c: int, lam: float, mean_service_s: float, ca2: float = 1.0, cs2: float = 1.0) -> float:
    """Mean wait in queue of G/G/c by Allen-Cunneen (exact for M/M/c)."""
    return mmc_wait_s(c, lam, mean_service_s) * (ca2 + cs2) / 2.0


def wait_exceeds_probability(
    c: int, lam: float, mean_service_s: float, x_s: float, ca2: float = 1.0, cs2: float = 1.0
) -> float:
    """``P(W > x)``: M/M/c's exponential tail, its rate scaled so the mean matches Allen-Cunneen."""
    if lam <= 0.0:
        return 0.0
    mu = 1.0 / mean_service_s
    if lam >= c * mu:
        return 1.0
    pw = erlang_c(c, lam / mu)
    scale = max((ca2 + cs2) / 2.0, 1e-9)
    return pw * math.exp(-(c * mu - lam) * max(x_s, 0.0) / scale)


def fluid_segment(q0: float, arrivals: float, dt_s: float, k: float) -> tuple[float, float]:
    """A FIFO fluid queue over one segment of ``dt_s``: backlog ``q0`` at its start, ``arrivals`` spread uniformly
    over it, served at ``k`` requests/s. Returns (integral of the backlog over the segment in request-seconds,
    requests served): the queue grows at ``lam - k`` while above zero, and once empty stays empty."""
    lam = arrivals / dt_s
    if k <= 0:
        integral, served = q0 * dt_s + arrivals * dt_s / 2, 0.0
    elif lam >= k:
        integral, served = q0 * dt_s + (lam - k) * dt_s * dt_s / 2, k * dt_s
    else:
        tau = q0 / (k - lam)  # when the backlog is gone
        if tau >= dt_s:
            integral, served = q0 * dt_s - (k - lam) * dt_s * dt_s / 2, k * dt_s
        else:
            integral, served = q0 * tau / 2, q0 + arrivals
    return integral, min(served, q0 + arrivals)


def drain_cohorts(cohorts: deque[list[float]], served: float, now_s: float, timeout_s: float, rejected: float) -> float:
    """Take ``served`` requests from the oldest cohorts (``[arrival time, requests]``, oldest first), then drop
    the cohorts that arrived more than ``timeout_s`` before ``now_s``; returns ``rejected`` plus the requests
    dropped (added one cohort at a time, onto the running total)."""
    left = served
    while left > 1e-12 and cohorts:
        take = min(left, cohorts[0][1])
        cohorts[0][1] -= take
        left -= take
        if cohorts[0][1] <= 1e-12:
            cohorts.popleft()
    while cohorts and cohorts[0][0] < now_s - timeout_s:
        rejected += cohorts.popleft()[1]
    return rejected
