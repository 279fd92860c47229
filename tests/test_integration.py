"""All features at once: training, inference, failures with checkpoints, a grid and a hard power cap."""

from __future__ import annotations

from pathlib import Path

import gigafactory_sim as g
from gigafactory_sim.config.loader import parse_scenario_text

SCENARIO = """
name: everything
seed: 3
start: 2020-06-01T00:00:00Z
horizon: 2d
facility:
  pue: 1.25
  failures: {rate_per_node_day: 0.05, distribution: {kind: exponential}}
  clusters:
    - {name: h200, gpu: H200-SXM, nodes: 48, gpus_per_node: 8}
workload:
  training:
    - kind: synthetic
      name: research
      arrivals: {kind: poisson, rate_per_hour: 40}
      classes:
        - {name: small, share: 0.8, sizes: {kind: choice, gpus: [1, 4, 8]},
           duration: {kind: lognormal, median: 1h, sigma: 1.0, max: 1d}}
        - {name: big, share: 0.2, sizes: {kind: choice, gpus: [32, 64, 128]},
           duration: {kind: lognormal, median: 6h, sigma: 0.8, max: 2d}}
  inference:
    - name: assistant
      model: {name: llama-3-8b, params_b: 8.03, layers: 32, kv_heads: 8, head_dim: 128}
      gpus_per_replica: 1
      demand: {kind: diurnal, mean_rate_per_s: 20, peak_to_trough: 4, peak_hour: 14}
      prompt_tokens: {kind: lognormal, median: 800, sigma: 0.8, max: 8000}
      output_tokens: {kind: lognormal, median: 150, sigma: 0.8, max: 2000}
      slo: {ttft: 2s, tpot: 100ms, quantile: 0.99}
      priority: 10
      autoscaler: {min_replicas: 2, max_replicas: 64, target_utilisation: 0.7, scale_up_delay: 2m,
                   scale_down_cooloff: 10m}
      sharing: {kind: inference_first}
      control_interval: 5m
checkpointing: {kind: young, cost: 30s, restart_overhead: 2m}
grid: {zone: FR, loop_year: true, carbon: {}, price: {}, renewables: {solar_mw: 0.05}}
energy:
  power_cap_mw: {kind: daily, base_mw: 0.42, windows: [{from_h: 17, to_h: 20, mw: 0.33}]}
  policies:
    - {kind: admission}
    - {kind: capping, min_limit_fraction: 0.3}
    - {kind: preemption}
report: {interval: 30m}
"""


def run() -> g.RunResult:
    return g.run(parse_scenario_text(SCENARIO, "everything.yaml", base_dir=Path.cwd()))


def test_cap_kept_with_inference_failures_and_checkpoints() -> None:
    s = run().summary
    cap = s["power_cap"]
    assert cap["hard_cap_kept"], cap
    assert cap["peak_grid_import_mw"] <= 0.42 + 1e-9
    assert cap["throttled_gpu_h"] > 0  # the cap binds: the test exercises the policies
    assert s["reliability"]["interruptions"] > 0
    assert s["inference"]["gpu_h"] > 0
    jobs = s["jobs"]
    assert jobs["submitted"] == jobs["completed"] + jobs["running_at_end"] + jobs["queued_at_end"] + jobs["failed"]
    classes = s["carbon"]["by_class_t"]
    assert abs(sum(classes.values()) - s["carbon"]["total_t"]) <= 1e-9 * s["carbon"]["total_t"]
    assert classes["inference"] > 0


def test_everything_is_deterministic() -> None:
    a, b = run(), run()
    assert a.summary == b.summary
    assert a.jobs.equals(b.jobs)
