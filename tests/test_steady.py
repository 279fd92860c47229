"""Steady state: the MSER-5 warm-up cut, batch means, the warm start (``initial_state: steady``), against theory
(M/M/c) and on the base scenario. (README, "Steady state and confidence".)"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gigafactory_sim
from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.random_streams import RandomStreams
from gigafactory_sim.stats import batch_means, mser5
from gigafactory_sim.workload.warm_start import WARM_START_SOURCE, warm_start_batches

ParseFn = Callable[..., Scenario]
BASE = Path(__file__).resolve().parents[1] / "scenarios" / "base.yaml"


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load ``a`` (REFERENCES.md, queueing theory)."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho + rho * b)


# --- MSER-5 and batch means (unit tables) ------------------------------------------------------------------------
def test_mser5_finds_the_end_of_a_transient() -> None:
    rng = np.random.default_rng(1)
    y = np.concatenate([np.linspace(0.0, 1.0, 60), np.ones(340)]) + rng.normal(0.0, 0.05, 400)
    choice = mser5(y)
    assert choice["rows"] % 5 == 0
    assert 50 <= choice["rows"] <= 70, choice
    assert not choice["at_limit"]


def test_mser5_keeps_a_stationary_series_and_flags_a_trend() -> None:
    rng = np.random.default_rng(2)
    assert mser5(rng.normal(0.0, 1.0, 400))["rows"] <= 20
    ramp = mser5(np.linspace(0.0, 1.0, 400))  # never settles: the minimum sits at the half-way limit
    assert ramp["at_limit"] and ramp["rows"] == 200
    assert mser5(np.ones(7))["rows"] == 0  # one batch: nothing to choose


def test_batch_means_interval_and_lag1() -> None:
    rng = np.random.default_rng(3)
    iid = batch_means(rng.normal(5.0, 1.0, 2000), np.ones(2000), 20)
    assert iid["batches"] == 20
    assert iid["ci95_low"] < 5.0 < iid["ci95_high"]
    assert abs(iid["lag1_autocorr"]) < 0.4
    # AR(1) with phi = 0.999: batches of 100 rows are far too short, and lag 1 says so
    x = np.zeros(2000)
    for i in range(1, 2000):
        x[i] = 0.999 * x[i - 1] + rng.normal()
    assert batch_means(x, np.ones(2000), 20)["lag1_autocorr"] > 0.6
    # time-weighted batch means; fractions clipped to [0, 1]
    near_one = batch_means(np.clip(1.0 - np.abs(rng.normal(0, 0.05, 200)), 0, 1), np.ones(200), 4, fraction=True)
    assert near_one["ci95_high"] <= 1.0
    # counts and powers never get a negative bound: a rarely non-empty queue
    sparse = np.zeros(200)
    sparse[::97] = 5.0
    assert batch_means(sparse, np.ones(200), 20)["ci95_low"] < 0.0  # unclipped, the bound goes negative
    assert batch_means(sparse, np.ones(200), 20, nonnegative=True)["ci95_low"] == 0.0
    flat = batch_means(np.array([1.0, 3.0]), np.array([3.0, 1.0]), 1)
    assert flat["mean"] == pytest.approx(1.5) and flat["ci95_low"] is None


# --- the section against the headline summary --------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_12h() -> gigafactory_sim.RunResult:
    """Base (inference, failures and checkpoints, grid: every column the section reads) for 12 h, no warm-up."""
    return gigafactory_sim.run(gigafactory_sim.load_scenario(BASE, ["horizon=12h", "statistics.warmup=0s"]))


def test_no_warmup_reproduces_the_headline_summary(base_12h: gigafactory_sim.RunResult) -> None:
    s = base_12h.summary
    st = s["statistics"]
    steady = st["steady"]
    assert st["warmup_rule"] == "none" and st["warmup_s"] == 0.0
    assert st["span_s"] == [0.0, s["horizon_s"]]
    rel = 1e-9
    for key in ("allocated_fraction", "busy_fraction", "allocated_gpu_h", "busy_gpu_h"):
        assert steady["utilisation"][key] == pytest.approx(s["utilisation"][key], rel=rel), key
    for name, c in s["clusters"].items():
        assert steady["clusters"][name]["allocated_fraction"] == pytest.approx(c["allocated_fraction"], rel=rel)
        assert steady["clusters"][name]["busy_fraction"] == pytest.approx(c["busy_fraction"], rel=rel)
    for key in ("it_mwh", "facility_mwh"):
        assert steady["energy"][key] == pytest.approx(s["energy"][key], rel=rel), key
    for key in ("mean_it_mw", "mean_facility_mw"):
        assert steady["power"][key] == pytest.approx(s["power"][key], rel=rel), key
    assert steady["power"]["peak_interval_it_mw"] <= s["power"]["peak_it_mw"] * (1 + rel)
    for key in ("submitted", "started", "completed"):
        assert steady["jobs"][key] == s["jobs"][key], key
    for key in ("mean_queued", "mean_running"):
        assert steady["jobs"][key] == pytest.approx(s["jobs"][key], rel=rel), key
    assert steady["wait_s"] == pytest.approx(s["wait_s"], rel=rel)
    bm = st["batch_means"]
    assert set(bm) >= {"allocated_fraction", "busy_fraction", "mean_it_mw", "mean_facility_mw", "mean_running"}
    for v in bm.values():
        assert v["batches"] == st["batching"]["batches"] == 20
    assert 0.0 <= bm["allocated_fraction"]["ci95_low"] <= bm["allocated_fraction"]["ci95_high"] <= 1.0


def test_fixed_warmup_is_rounded_to_the_grid_and_exact(parse: ParseFn) -> None:
    result = gigafactory_sim.run(gigafactory_sim.load_scenario(BASE, ["horizon=6h", "statistics.warmup=50m"]))
    st = result.summary["statistics"]
    assert st["warmup_rule"] == "fixed"
    assert st["warmup_requested_s"] == 3000.0
    assert st["warmup_s"] == 2700.0 and "rounded" in st["note"]  # 15 min rows: 45 min is the nearest boundary
    ts = result.timeseries
    rows = ts[ts["t_start_s"] >= 2700.0]
    dt_h = (rows["t_end_s"] - rows["t_start_s"]) / 3600.0
    assert st["steady"]["energy"]["it_mwh"] == pytest.approx(float((rows["it_power_mw"] * dt_h).sum()), rel=1e-12)
    jobs = result.jobs
    assert st["steady"]["jobs"]["submitted"] == int((jobs["submit_s"] >= 2700.0).sum())


def test_statistics_section_absent_by_default(parse: ParseFn) -> None:
    summary = gigafactory_sim.run(gigafactory_sim.load_scenario(BASE, ["horizon=1h"])).summary
    assert "statistics" not in summary


def test_warmup_must_be_shorter_than_the_horizon() -> None:
    with pytest.raises(gigafactory_sim.ScenarioError, match="shorter than the horizon"):
        gigafactory_sim.load_scenario(BASE, ["horizon=1h", "statistics.warmup=2h"])


# --- the warm start: length-biased residuals ---------------------------------------------------------------------
def one_gpu_yaml(rate_per_hour: float, duration: str, nodes: int = 4096, extra: str = "") -> str:
    return f"""
        seed: 5
        horizon: 1h
        initial_state: steady
        facility:
          clusters:
            - {{name: big, gpu: H200-SXM, nodes: {nodes}, gpus_per_node: 8}}
        workload:
          training:
            - kind: synthetic
              name: lone
              arrivals: {{kind: poisson, rate_per_hour: {rate_per_hour!r}}}
              classes:
                - {{name: one, share: 1, sizes: {{kind: choice, gpus: [1]}}, duration: {duration}}}
        {extra}
        """


def test_warm_start_is_length_biased(parse: ParseFn) -> None:
    """Lognormal run times (median 1 h, σ = 1): the jobs caught running at t = 0 fill λ·E[x] GPUs, and their
    remaining time averages E[x²] / (2 E[x]) = median · e^(1.5σ²) / 2 = 8,067 s (renewal theory), not the
    E[x] / 2 = 2,968 s of an unbiased draw."""
    median_s, sigma = 3600.0, 1.0
    mean_x = median_s * math.exp(sigma**2 / 2)
    offered = 10_000.0
    scenario = parse(
        one_gpu_yaml(offered / mean_x * 3600.0, f"{{kind: lognormal, median: 1h, sigma: {sigma}, min: 1s, max: 1000d}}")
    )
    (batch,) = warm_start_batches(scenario, RandomStreams(scenario.seed))
    assert batch.source == WARM_START_SOURCE and set(batch.tenant) == {"warm-start-lone"}
    assert np.all(batch.submit_s == 0.0)
    assert batch.gpus.sum() == pytest.approx(offered, rel=0.01)
    expected_residual = median_s * math.exp(1.5 * sigma**2) / 2
    assert batch.work_s.mean() == pytest.approx(expected_residual, rel=0.05)


def test_warm_start_capped_at_capacity_and_deterministic(parse: ParseFn) -> None:
    scenario = parse(one_gpu_yaml(200.0, "{kind: exponential, mean: 1h}", nodes=8))  # offers 200 GPUs to 64
    (batch,) = warm_start_batches(scenario, RandomStreams(scenario.seed))
    assert 63 <= batch.gpus.sum() <= 64
    (again,) = warm_start_batches(scenario, RandomStreams(scenario.seed))
    assert np.array_equal(batch.work_s, again.work_s)
    assert (
        warm_start_batches(
            parse(
                one_gpu_yaml(200.0, "{kind: exponential, mean: 1h}").replace(
                    "initial_state: steady", "initial_state: empty"
                )
            ),
            RandomStreams(5),
        )
        == []
    )


def test_warm_start_jobs_start_at_once_and_keep_the_workload_prefix_consistent() -> None:
    short = gigafactory_sim.run(gigafactory_sim.load_scenario(BASE, ["horizon=2h", "initial_state=steady"])).jobs
    longer = gigafactory_sim.run(gigafactory_sim.load_scenario(BASE, ["horizon=4h", "initial_state=steady"])).jobs
    warm = short[short["source"] == WARM_START_SOURCE]
    assert len(warm) > 100
    assert (warm["start_s"] == 0.0).mean() > 0.99  # all but the few that do not fit start at t = 0
    assert list(warm["job_id"]) == list(range(len(warm)))
    cols = ["job_id", "source", "tenant", "job_class", "gpus", "submit_s", "work_gpu_h"]
    pd.testing.assert_frame_equal(short[cols], longer[cols].iloc[: len(short)])


# --- M/M/c: the transient bias from an empty start, and what removes it -------------------------------------------
MMC_C, MMC_RHO, MMC_MEAN_S = 8, 0.85, 3600.0
MMC_A = MMC_C * MMC_RHO  # offered load: E[busy servers] = a in steady state


def mmc_yaml(seed: int, horizon: str, initial_state: str, interval: str) -> str:
    return f"""
        seed: {seed}
        horizon: {horizon}
        initial_state: {initial_state}
        statistics: {{warmup: auto}}
        facility:
          pue: 1.0
          clusters:
            - {{name: q, gpu: H200-SXM, nodes: 2, gpus_per_node: 4}}
        workload:
          training:
            - kind: synthetic
              name: mm
              arrivals: {{kind: poisson, rate_per_hour: {MMC_A / MMC_MEAN_S * 3600.0!r}}}
              classes:
                - {{name: one, share: 1, sizes: {{kind: choice, gpus: [1]}},
                   duration: {{kind: exponential, mean: 1h}}}}
        scheduler: {{kind: fifo}}
        report: {{interval: {interval}}}
        """


def busy_servers(
    parse: ParseFn, seeds: range, horizon: str, initial_state: str, interval: str, steady: bool
) -> np.ndarray:
    out = []
    for seed in seeds:
        s = gigafactory_sim.run(parse(mmc_yaml(seed, horizon, initial_state, interval))).summary
        util = s["statistics"]["steady"]["utilisation"] if steady else s["utilisation"]
        out.append(util["allocated_fraction"] * MMC_C)
    return np.array(out)


def test_mmc_warm_start_removes_the_fill_up_bias(parse: ParseFn) -> None:
    """4-hour runs (4 mean service times), 48 seeds: mean busy servers against a = 6.8.

    From empty the servers fill as a(1 - e^(-μt)): -25 % over 4 h. The warm start puts a jobs in service (the
    queue is not pre-filled), so the only bias left is the queue still building: mean busy = a - (E N(T) - E N(0))
    / (μT), between -Lq/(μT) (Lq = 3.24 by Erlang-C: -11.9 %) and 0. The empty start fails that same bound."""
    seeds = range(48)
    horizon_h = 4.0
    lq = erlang_c(MMC_C, MMC_A) * MMC_RHO / (1 - MMC_RHO)
    lower = MMC_A - lq / horizon_h  # μ = 1 per hour

    def within(x: np.ndarray) -> bool:
        se = x.std(ddof=1) / np.sqrt(len(x))
        return bool(lower - 3 * se <= x.mean() <= MMC_A + 3 * se)

    empty = busy_servers(parse, seeds, "4h", "empty", "15m", steady=False)
    warm = busy_servers(parse, seeds, "4h", "steady", "15m", steady=False)
    print(
        f"M/M/8 4 h: busy {empty.mean():.3f} from empty ({empty.mean() / MMC_A - 1:+.1%}), "
        f"{warm.mean():.3f} warm ({warm.mean() / MMC_A - 1:+.1%}); a = {MMC_A}, bound [{lower:.3f}, {MMC_A}]"
    )
    assert not within(empty)
    assert within(warm)


def test_mmc_mser5_removes_the_fill_up_bias(parse: ParseFn) -> None:
    """48-hour runs from empty, 64 seeds: the headline mean busy servers is biased low by the fill-up (about
    -E[N]/(μT) = -10/48 h); over the span MSER-5 keeps it is within 3 standard errors of a, the headline is not."""
    seeds = range(64)
    headline = busy_servers(parse, seeds, "48h", "empty", "30m", steady=False)
    steady = busy_servers(parse, seeds, "48h", "empty", "30m", steady=True)

    def z(x: np.ndarray) -> float:
        return float((x.mean() - MMC_A) / (x.std(ddof=1) / np.sqrt(len(x))))

    print(
        f"M/M/8 48 h from empty: headline {headline.mean():.3f} (z = {z(headline):+.1f}), "
        f"after MSER-5 {steady.mean():.3f} (z = {z(steady):+.1f}); a = {MMC_A}"
    )
    assert z(headline) < -3.0
    assert abs(z(steady)) < 3.0


# --- base: a short run lands near the long-run value -------------------------------------------------------------
# Measured: base, 30 days, seed 42, from empty, warmup auto: MSER-5 cuts 643,500 s (7.4 d) and the steady allocated
# fraction is 0.781 (batch means 95 % CI 0.747-0.817; the headline over all 30 days reads 0.714).
BASE_LONG_RUN_ALLOCATED = 0.781


def test_base_short_warm_run_lands_near_the_long_run_value() -> None:
    """4 days, four seeds, warm start and MSER-5: the mean steady allocated fraction is within 4 points of the
    long-run value; the same from empty (seed 42) is not (the B200 cluster takes ~10 days to fill)."""

    def steady_allocated(seed: int, initial_state: str) -> float:
        scenario = gigafactory_sim.load_scenario(
            BASE,
            [
                "horizon=4d",
                f"seed={seed}",
                f"initial_state={initial_state}",
                "statistics.warmup=auto",
                "report.interval=1h",
            ],
        )
        return float(gigafactory_sim.run(scenario).summary["statistics"]["steady"]["utilisation"]["allocated_fraction"])

    warm = [steady_allocated(seed, "steady") for seed in (42, 1, 2, 3)]
    empty = steady_allocated(42, "empty")
    print(
        f"base 4 d steady allocated: warm {[round(x, 3) for x in warm]} (mean {np.mean(warm):.3f}), "
        f"empty {empty:.3f}; long run {BASE_LONG_RUN_ALLOCATED}"
    )
    assert abs(np.mean(warm) - BASE_LONG_RUN_ALLOCATED) < 0.04
    assert abs(empty - BASE_LONG_RUN_ALLOCATED) > 0.04
