"""Scenario files with inference services load and run; the discrete fidelity runs inside the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from gigafactory_sim.api import run
from gigafactory_sim.config.loader import load_scenario, parse_scenario_text
from gigafactory_sim.preparation import prepare
from gigafactory_sim.sim.engine import Simulation

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["base.yaml", "inference-heavy.yaml"])
def test_scenarios_with_services_validate(name: str) -> None:
    sc = load_scenario(ROOT / "scenarios" / name)
    assert sc.workload.inference
    Simulation(prepare(sc))


def test_inference_heavy_runs_a_day() -> None:
    r = run(load_scenario(ROOT / "scenarios" / "inference-heavy.yaml", ["horizon=1d"]))
    inf = r.summary["inference"]
    for svc in inf["services"].values():
        assert svc["requests"]["served"] > 0
        assert svc["energy"]["it_kwh_per_1000_output_tokens"] > 0
    split = inf["facility_gpu_h"]
    assert sum(split.values()) == pytest.approx(r.summary["gpus_total"] * 24)


DISCRETE = """
name: discrete
seed: 2
horizon: 20m
facility:
  clusters:
    - {name: h200, gpu: H200-SXM, nodes: 2}
workload:
  inference:
    - name: small
      model: {params_b: 8.03, layers: 32, kv_heads: 8, head_dim: 128}
      fidelity: discrete
      demand: {kind: constant, rate_per_s: 12}
      prompt_tokens: {kind: lognormal, median: 300, sigma: 0.7}
      output_tokens: {kind: lognormal, median: 120, sigma: 0.7, max: 2000}
      slo: {ttft: 2s, tpot: 100ms}
      autoscaler: {min_replicas: 1, max_replicas: 4, scale_up_delay: 1m, scale_down_cooloff: 5m}
      control_interval: 1m
report: {interval: 5m}
"""


def test_discrete_fidelity_in_the_engine() -> None:
    r = run(parse_scenario_text(DISCRETE, "discrete.yaml"))
    svc = r.summary["inference"]["services"]["small"]
    offered = svc["requests"]["offered"]
    assert offered == pytest.approx(12 * 1200, rel=0.05)
    assert svc["requests"]["served"] + svc["requests"]["pending_at_end"] + svc["requests"]["rejected"] == offered
    assert svc["latency"]["estimated"] is False
    assert svc["slo"]["met"]
    # the service's own energy equals what the facility meter saw on its GPUs and nodes
    assert svc["energy"]["it_kwh"] / 1000 == pytest.approx(r.summary["energy"]["inference_it_mwh"], rel=1e-9)
    assert r.summary["energy"]["training_it_mwh"] == 0.0


def test_without_services_outputs_have_no_inference_parts() -> None:
    r = run(load_scenario(ROOT / "scenarios" / "quickstart.yaml", ["horizon=6h"]))
    assert "inference" not in r.summary
    assert "inference_it_mwh" not in r.summary["energy"]
    assert not [c for c in r.timeseries.columns if "infer" in c]
    assert "preemptions" not in r.jobs.columns
    e = r.summary["energy"]
    assert e["training_it_mwh"] + e["idle_it_mwh"] == pytest.approx(e["it_mwh"])
