"""The fluid's fast paths give exactly what the plain computations give (same floats, not merely close)."""

from __future__ import annotations

import numpy as np

from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS
from gigafactory_sim.inference.agreement import reference_service
from gigafactory_sim.inference.bursts import burst_weighted_point, poisson_levels, wait_levels
from gigafactory_sim.inference.fluid import FluidService, LatencyHistogram, cluster_model
from gigafactory_sim.inference.perf import TokenMix

H200 = BUILTIN_GPUS["H200-SXM"]
SERVICE = reference_service()


def _service(step_queue: bool = True) -> FluidService:
    rng = np.random.default_rng(3)
    prompt = rng.lognormal(7.0, 0.9, 2000).round()
    output = rng.lognormal(5.0, 0.9, 2000).round() + 1
    mix = TokenMix.from_samples(prompt, output)
    cm = cluster_model(SERVICE.replica_perf(H200), H200.power_model, mix, SERVICE.slo.limits(), "continuous")
    return FluidService({0: cm}, mix, prompt, output, SERVICE.slo.limits(), "continuous", 60.0, step_queue=step_queue)


def test_array_points_equal_the_scalar_points() -> None:
    f = _service()
    lam_sat = 1.0 / (f.models[0].perf.c_prefill_s * f.mix.prompt_mean)
    rng = np.random.default_rng(0)
    rates = np.concatenate([[0.0, 1e-12, f.models[0].rate_per_s], rng.uniform(0.0, 1.2 * lam_sat, 3000)])
    terms = f.points_at(0, rates)
    assert terms is not None
    power, step, feasible = terms
    assert not feasible.all() and feasible.any()  # both sides of overload are covered
    for i, r in enumerate(rates.tolist()):
        op = f._point(0, r)
        assert (op.gpu_power_w, op.step_s, op.feasible) == (power[i], step[i], feasible[i])
    assert _service(step_queue=False).points_at(0, rates) is None  # the plain mean field: scalar points


def test_burst_weighted_point_is_the_same_with_array_points() -> None:
    f = _service()
    rng = np.random.default_rng(1)
    rates = rng.gamma(0.5, f.models[0].rate_per_s, 120)
    spans = np.full(len(rates), 2.5)
    spans[-1] = 1.0

    def point(r: float):
        return f._point(0, r)

    slow = burst_weighted_point(point, rates, durations_s=spans)
    fast = burst_weighted_point(point, rates, durations_s=spans, points_at=lambda x: f.points_at(0, x))
    assert slow == fast


def test_histogram_bins_are_the_searched_bins() -> None:
    h = LatencyHistogram()
    rng = np.random.default_rng(2)
    e = h.edges
    values = np.concatenate(
        [
            rng.lognormal(0.0, 4.0, 5000),
            e,
            np.nextafter(e, 0.0),
            np.nextafter(e, np.inf),
            [1e-12, 1e300, 5e-324],
        ]
    )
    searched = np.clip(np.searchsorted(e, values) - 1, 0, len(h.weights) - 1)
    assert (h._bins(values) == searched).all()
    for odd in ([0.0, 1.0], [-1.0], [np.inf], [np.nan], []):  # searched
        v = np.asarray(odd, dtype=float)
        assert (h._bins(v) == np.clip(np.searchsorted(e, v) - 1, 0, len(h.weights) - 1)).all()
    linear = LatencyHistogram(edges=np.linspace(0.0, 10.0, 11), weights=np.zeros(10))  # not log-spaced: searched
    v = rng.uniform(-1.0, 11.0, 500)
    assert (linear._bins(v) == np.clip(np.searchsorted(linear.edges, v) - 1, 0, 9)).all()


def test_histogram_add_grid_is_add_case_by_case() -> None:
    grid = np.random.default_rng(4).lognormal(0.0, 1.0, (9, 100))
    waits, weights = [0.0, 0.3, 1.7, 0.3], [0.5, 0.25, 0.125, 3.0]
    one, other = LatencyHistogram(), LatencyHistogram()
    for w, p in zip(waits, weights, strict=True):
        one.add(w + grid, p)
    other.add_grid(waits, grid, weights)
    assert one.weights.tobytes() == other.weights.tobytes()


def _poisson_levels_plain(mean: np.ndarray, levels: int = 9) -> np.ndarray:
    """The table as first written: all 61 counts, every row, counted by comparison."""
    from statistics import NormalDist

    mu = np.maximum(np.asarray(mean, dtype=float), 0.0)
    out = np.zeros((levels, len(mu)))
    probs = (np.arange(levels) + 0.5) / levels
    small = mu <= 20.0
    if small.any():
        k = np.arange(0, 61, dtype=float)
        log_fact = np.concatenate(([0.0], np.cumsum(np.log(k[1:]))))
        m = mu[small][:, None]
        with np.errstate(divide="ignore"):
            log_pmf = k[None, :] * np.log(np.where(m > 0, m, 1.0)) - m - log_fact[None, :]
        pmf = np.where(m > 0, np.exp(log_pmf), (k[None, :] == 0).astype(float))
        cdf = np.cumsum(pmf, axis=1)
        out[:, small] = (cdf[None, :, :] < probs[:, None, None]).sum(axis=2)
    if (~small).any():
        z = np.array([NormalDist().inv_cdf(q) for q in probs])
        big = mu[~small]
        out[:, ~small] = np.maximum(big[None, :] + np.sqrt(big)[None, :] * z[:, None], 0.0)
    return out


def test_poisson_levels_equal_the_full_table() -> None:
    rng = np.random.default_rng(5)
    for t in range(200):
        mu = np.sort(rng.lognormal(rng.uniform(-5.0, 4.0), rng.uniform(0.1, 3.0), int(rng.integers(1, 150))))
        if t % 2:
            mu = np.round(mu * 3.0) / 3.0  # runs of equal means
        if t % 5 == 0:
            mu[:2] = 0.0
        assert poisson_levels(mu).tobytes() == _poisson_levels_plain(mu).tobytes()


def test_wait_levels_equal_split_sums() -> None:
    rng = np.random.default_rng(6)
    for _ in range(100):
        n = int(rng.integers(2, 3000))
        c = rng.poisson(rng.uniform(0.0, 20.0), n).astype(float)
        w = np.maximum(rng.normal(0.0, 1.0, n), 0.0)
        pos = w > 0
        order = np.argsort(w[pos])
        wp, cp = w[pos][order], c[pos][order]
        cum = np.cumsum(cp)
        idx = np.searchsorted(cum, np.linspace(0.0, cum[-1], 9)[1:-1], side="left")
        total = float(c.sum())
        expected = [(float(c[~pos].sum()) / total, 0.0)] if c[~pos].sum() > 0 else []
        for pw, pc in zip(np.split(wp, idx), np.split(cp, idx), strict=True):
            if pc.sum() > 0:
                expected.append((float(pc.sum()) / total, float((pw * pc).sum() / pc.sum())))
        assert wait_levels(w, c) == expected


def test_the_fluid_segment_against_hand_values() -> None:
    """The FIFO fluid queue both the colocated fluid and the prefill pool use (queueing.fluid_segment)."""
    from collections import deque

    from gigafactory_sim.inference.queueing import drain_cohorts, fluid_segment

    assert fluid_segment(10.0, 0.0, 1.0, 5.0) == (7.5, 5.0)  # backlog 10 drained at 5/s for 1 s: 10 -> 5
    assert fluid_segment(0.0, 10.0, 1.0, 5.0) == (2.5, 5.0)  # 10/s arriving, 5/s served: grows to 5
    assert fluid_segment(2.0, 1.0, 1.0, 5.0) == (0.5, 3.0)  # empty after 0.5 s, then every arrival served
    assert fluid_segment(3.0, 2.0, 1.0, 0.0) == (4.0, 0.0)  # nothing served
    cohorts = deque([[0.0, 2.0], [1.0, 3.0], [90.0, 1.0]])
    assert drain_cohorts(cohorts, 4.0, 100.0, 60.0, 0.5) == 1.5  # 4 served; the rest of the t=1 cohort times out
    assert list(cohorts) == [[90.0, 1.0]]


def test_histogram_quantile_averages_at_a_boundary_whatever_the_sums_round_to() -> None:
    # Exactly 99 % of the weight in low bins, 1 % far above, with empty bins between: the 0.99 quantile lies on the
    # boundary, so it is the mean of the last low bin and the far bin (Hyndman and Fan's definition 2), however the
    # weights' sums round. Taking the total as a pairwise sum and the cumulative weight as a running one put it
    # at either end of the stretch (the far bin in ~40 % of these cases).
    rng = np.random.default_rng(0)
    h = LatencyHistogram()
    mid = np.sqrt(h.edges[:-1] * h.edges[1:])
    for _ in range(300):
        h = LatencyHistogram()
        k = int(rng.integers(5, 200))
        low = np.sort(rng.choice(1000, k, replace=False))
        h.weights[low] = rng.random(k) * 0.1
        h.weights[3900] = np.cumsum(h.weights)[-1] / 99
        assert h.quantile(0.99) == (float(mid[low[-1]]) + float(mid[3900])) / 2.0
    # otherwise the first bin whose cumulative weight passes q of the total
    h = LatencyHistogram()
    h.weights[[10, 20, 30]] = [1.0, 2.0, 1.0]
    a, b, c = (float(mid[i]) for i in (10, 20, 30))
    quantiles = [h.quantile(q) for q in (0.0, 0.1, 0.25, 0.26, 0.5, 0.75, 0.76, 1.0)]
    assert quantiles == [a, a, (a + b) / 2, b, b, (b + c) / 2, c, c]
    even = LatencyHistogram()
    even.weights[[10, 20]] = [3.0, 3.0]
    assert even.quantile(0.5) == (a + b) / 2  # the median of an even count
    assert LatencyHistogram().quantile(0.5) is None
