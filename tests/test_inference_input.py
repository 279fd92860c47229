"""Bad inference input: each problem is named by its field, and the CLI exits with code 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gigafactory_sim.cli import app
from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.inference.demand import TraceDemand
from gigafactory_sim.inference.trace import load_request_trace
from gigafactory_sim.preparation import prepare
from gigafactory_sim.sim.engine import Simulation

SCENARIO = """
name: bad
horizon: 1h
facility:
  clusters:
    - {{name: h200, gpu: H200-SXM, nodes: 4}}
    - {{name: a100, gpu: A100-80GB, nodes: 4}}
workload:
  inference:
    - name: svc
      model: {model}
      gpus_per_replica: {gpus}
      clusters: {clusters}
      demand: {demand}
      prompt_tokens: {{kind: fixed, value: 500}}
      output_tokens: {{kind: fixed, value: 200}}
      slo: {slo}
"""
OK = dict(
    model="{params_b: 8, layers: 32, kv_heads: 8, head_dim: 128}",
    gpus=1,
    clusters="[h200]",
    demand="{kind: constant, rate_per_s: 5}",
    slo="{ttft: 2s, tpot: 100ms}",
)


def problems(**kw: object) -> list[tuple[str, str]]:
    text = SCENARIO.format(**{**OK, **kw})
    try:
        sc = parse_scenario_text(text, "bad.yaml", base_dir=Path.cwd())
        Simulation(prepare(sc))
    except ScenarioError as exc:
        return [(p.field, p.message) for p in exc.problems]
    return []


def test_good_input_has_no_problem() -> None:
    assert problems() == []


def test_replica_that_does_not_fit_in_gpu_memory() -> None:
    found = problems(model="{params_b: 405, layers: 126, kv_heads: 8, head_dim: 128}", gpus=4)
    assert found and found[0][0] == "workload.inference.0.model"
    assert "does not fit in GPU memory" in found[0][1]


def test_objective_no_batch_size_can_meet() -> None:
    found = problems(slo="{tpot: 2ms}")
    assert found == [(found[0][0], found[0][1])] and found[0][0] == "workload.inference.0.slo.tpot"
    assert "no batch size meets tpot" in found[0][1]
    found = problems(slo="{ttft: 1ms}")
    assert found[0][0] == "workload.inference.0.slo.ttft"


def test_service_allowed_on_no_cluster() -> None:
    assert problems(clusters="[]")[0] == ("workload.inference.0.clusters", problems(clusters="[]")[0][1])
    found = problems(clusters="[nowhere]")
    assert "workload.inference.0.clusters.0" in [f for f, _ in found]
    assert "workload.inference.0.clusters" in [f for f, _ in found]


def test_replica_larger_than_a_node_must_be_whole_nodes() -> None:
    found = problems(gpus=12)
    assert found[0][0] == "workload.inference.0.gpus_per_replica"


@pytest.mark.parametrize(
    ("rows", "column", "what"),
    [
        ("arrival_s,prompt_tokens,output_tokens\n0,10,5\n2,10,5\n1,10,5\n", "arrival_s", "goes backwards"),
        ("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,-3,5\n", "prompt_tokens", "negative"),
        ("arrival_s,prompt_tokens,output_tokens\n0,10,5\n-1,10,5\n", "arrival_s", "negative"),
        ("arrival_s,prompt_tokens,output_tokens\n0,10,x\n", "output_tokens", "not a number"),
    ],
)
def test_bad_trace_rows_name_column_and_line(tmp_path: Path, rows: str, column: str, what: str) -> None:
    f = tmp_path / "t.csv"
    f.write_text(rows)
    with pytest.raises(ScenarioError) as exc:
        load_request_trace(TraceDemand(path=str(f)), tmp_path, 3600.0, "workload.inference.0")
    p = exc.value.problems[0]
    assert column in p.field and what in p.message and p.line is not None and p.line >= 2


def test_azure_sample_loads_scales_and_loops() -> None:
    demand = TraceDemand(path="builtin:azure_llm_2023_conv_sample.csv.gz", format="azure", rate_scale=2.0)
    tr = load_request_trace(demand, Path.cwd(), 6 * 3600.0, "x")
    arrival, _, output = tr.materialise()
    assert np.all(np.diff(arrival) >= 0) and arrival[-1] < 6 * 3600 and len(arrival) == len(tr)
    rate = len(tr) / (6 * 3600)
    assert rate == pytest.approx(2 * 4000 / (13.58 * 60), rel=0.02)  # twice the sample's ~4.9 req/s
    assert output.mean() == pytest.approx(253.7, rel=0.01)
    assert tr.expected_requests(0, 3600) + tr.expected_requests(3600, 6 * 3600) == len(tr)
    assert tr.expected_requests(1000, 1000 + tr.period_s) == 4000  # one loop holds the whole sample


def test_cli_validate_exits_2_and_names_the_field(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(SCENARIO.format(**{**OK, "slo": "{tpot: 2ms}"}))
    result = CliRunner().invoke(app, ["validate", str(f)])
    assert result.exit_code == 2
    assert "workload.inference.0.slo.tpot" in result.output + (result.stderr if result.stderr_bytes else "")
