"""Inference and training sharing clusters: preemption, static partitions, energy bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

from gigafactory_sim.api import run
from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.result import RunResult

BASE = """
name: sharing
seed: 5
start: 2024-06-03T00:00:00Z
horizon: 12h
facility:
  clusters:
    - {{name: h200, gpu: H200-SXM, nodes: 8, gpus_per_node: 8}}
workload:
  training:
    - kind: synthetic
      name: flood
      arrivals: {{kind: poisson, rate_per_hour: 400}}
      classes:
        - {{name: long, share: 1, priority: {train_priority}, sizes: {{kind: choice, gpus: [8]}},
           duration: {{kind: fixed, value: 5d}}}}
  inference:
    - name: chat
      model: {{params_b: 8.03, layers: 32, kv_heads: 8, head_dim: 128}}
      gpus_per_replica: 8
      priority: 10
      demand: {{kind: diurnal, mean_rate_per_s: 200, peak_to_trough: 5, peak_hour: 9, utc_offset_h: 0}}
      prompt_tokens: {{kind: lognormal, median: 800, sigma: 0.8}}
      output_tokens: {{kind: lognormal, median: 200, sigma: 0.8, max: 4096}}
      slo: {{ttft: 2s, tpot: 100ms}}
      autoscaler: {{min_replicas: 1, max_replicas: 6, scale_up_delay: 2m, scale_down_cooloff: 10m}}
      sharing: {sharing}
report: {{interval: 15m}}
"""


def scenario_run(train_priority: int = 0, sharing: str = "{kind: inference_first}") -> RunResult:
    text = BASE.format(train_priority=train_priority, sharing=sharing)
    return run(parse_scenario_text(text, "sharing.yaml"))


def test_inference_first_preempts_lower_priority_training_and_records_lost_gpu_hours() -> None:
    r = scenario_run()
    inf = r.summary["inference"]
    assert inf["training_preemptions"] > 0
    lost = r.jobs["preemption_lost_gpu_h"].sum()
    assert lost > 0
    assert inf["training_lost_gpu_h"] == pytest.approx(lost)
    assert r.jobs["preemptions"].sum() == inf["training_preemptions"]
    # a preempted 8-GPU job lost at most its run time so far on 8 GPUs
    preempted = r.jobs[r.jobs["preemptions"] > 0]
    assert (preempted["preemption_lost_gpu_h"] <= 8 * 12 * preempted["preemptions"] + 1e-9).all()
    svc = inf["services"]["chat"]
    assert svc["replicas"]["mean"] > 1.5  # the autoscaler grew beyond the minimum by taking training's GPUs
    total = r.timeseries["allocated_gpus.h200"] + r.timeseries["infer_gpus.h200"]
    assert (total <= 64 + 1e-6).all()


def test_training_at_or_above_service_priority_is_never_preempted() -> None:
    r = scenario_run(train_priority=10)
    inf = r.summary["inference"]
    assert inf["training_preemptions"] == 0
    assert r.jobs["preemption_lost_gpu_h"].sum() == 0
    assert inf["services"]["chat"]["replicas"]["unmet_replica_h"] > 0


def test_static_partition_keeps_training_off_reserved_nodes() -> None:
    r = scenario_run(sharing="{kind: static_partition, nodes: {h200: 3}}")
    ts = r.timeseries
    assert (ts["allocated_gpus.h200"] <= 5 * 8 + 1e-6).all()  # training never beyond the 5 unreserved nodes
    assert ts["allocated_gpus.h200"].max() == pytest.approx(40, abs=1e-6)  # ... which it fills
    assert (ts["infer_gpus.h200"] <= 3 * 8 + 1e-6).all()
    assert ts["infer_gpus.h200"].max() == pytest.approx(24, abs=1e-6)  # demand wants more than the partition
    assert r.summary["inference"]["training_preemptions"] == 0
    # reserved but unused GPUs count as idle, not as training
    gpu_h = r.summary["inference"]["facility_gpu_h"]
    assert gpu_h["training"] + gpu_h["inference"] + gpu_h["idle"] == pytest.approx(64 * 12)
    assert gpu_h["idle"] > 0


def test_energy_per_token_and_facility_split_are_consistent() -> None:
    r = scenario_run()
    s = r.summary
    svc = s["inference"]["services"]["chat"]
    e = svc["energy"]
    assert e["it_kwh_per_1000_output_tokens"] * svc["tokens"]["output"] / 1000 == pytest.approx(e["it_kwh"])
    assert e["it_kwh"] / 1000 == pytest.approx(s["energy"]["inference_it_mwh"], rel=1e-9)
    assert s["energy"]["training_it_mwh"] + s["energy"]["inference_it_mwh"] + s["energy"][
        "idle_it_mwh"
    ] == pytest.approx(s["energy"]["it_mwh"])
    ts = r.timeseries
    dt_h = (ts["t_end_s"] - ts["t_start_s"]) / 3600
    assert float((ts["inference_power_mw"] * dt_h).sum()) == pytest.approx(s["energy"]["inference_it_mwh"])
    # a served token costs between 0.05 and 2 J of GPU energy for an 8B model on H200 (roofline ~0.15 J)
    assert 0.05 < e["gpu_j_per_output_token"] < 2.0
    assert np.isfinite(svc["latency"]["mean_e2e_s"])


def test_inference_plots_render_and_skip_without_services() -> None:
    from gigafactory_sim.report.plots_inference import demand_vs_capacity_png, gpus_by_use_png

    r = scenario_run()
    for plot in (demand_vs_capacity_png, gpus_by_use_png):
        png = plot(r.summary, r.timeseries, r.jobs)
        assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"
        assert plot({"gpus_total": 1}, r.timeseries, r.jobs) is None


PROPERTY = """
name: prop
seed: {seed}
horizon: 6h
facility:
  clusters:
    - {{name: c, gpu: H200-SXM, nodes: {nodes}, gpus_per_node: 8}}
workload:
  training:
    - kind: synthetic
      name: t
      arrivals: {{kind: poisson, rate_per_hour: {train_rate}}}
      classes:
        - {{name: a, share: 1, priority: {train_priority},
           sizes: {{kind: choice, gpus: [1, 4, 8, 16, 32]}},
           duration: {{kind: lognormal, median: 2h, sigma: 1}}}}
  inference:
    - name: s
      model: {{params_b: 8.03, layers: 32, kv_heads: 8, head_dim: 128}}
      gpus_per_replica: {replica_gpus}
      demand: {{kind: diurnal, mean_rate_per_s: {rate}, peak_to_trough: 6, peak_hour: 3, utc_offset_h: 0}}
      prompt_tokens: {{kind: lognormal, median: 500, sigma: 1}}
      output_tokens: {{kind: lognormal, median: 150, sigma: 1, max: 4000}}
      slo: {{ttft: 2s, tpot: 100ms}}
      autoscaler: {{min_replicas: 1, max_replicas: 64, scale_up_delay: 3m, scale_down_cooloff: 10m}}
      control_interval: 2m
report: {{interval: 10m}}
"""


def test_sharing_invariants_hold_for_random_mixes() -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        seed=st.integers(0, 1000),
        nodes=st.integers(4, 8),
        train_rate=st.integers(5, 200),
        train_priority=st.sampled_from([0, 5, 20]),
        replica_gpus=st.sampled_from([1, 2, 8, 16]),
        rate=st.sampled_from([5, 50, 400]),
    )
    def check(**kw: int) -> None:
        if kw["replica_gpus"] > kw["nodes"] * 8:
            return
        r = run(parse_scenario_text(PROPERTY.format(**kw), "prop.yaml"))
        ts = r.timeseries
        total = kw["nodes"] * 8
        assert ((ts["allocated_gpus.c"] + ts["infer_gpus.c"]) <= total + 1e-6).all()
        assert (ts["infer_gpus.c"] >= -1e-9).all() and (ts["gpu_idle_w.c"] >= -1e-6).all()
        jobs = r.summary["jobs"]
        assert jobs["completed"] + jobs["running_at_end"] + jobs["queued_at_end"] == jobs["submitted"]
        inf = r.summary["inference"]
        assert inf["training_lost_gpu_h"] >= 0
        if kw["train_priority"] >= 10:
            assert inf["training_preemptions"] == 0
        svc = inf["services"]["s"]["requests"]
        assert svc["served"] + svc["rejected"] + svc["pending_at_end"] == pytest.approx(svc["offered"], rel=1e-9)
        e = r.summary["energy"]
        assert e["training_it_mwh"] + e["inference_it_mwh"] + e["idle_it_mwh"] == pytest.approx(e["it_mwh"])

    check()
