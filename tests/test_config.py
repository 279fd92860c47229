"""Loading scenarios: every problem is reported at once, each with its file, line and field path; ``--set``
overrides are applied before validation and validated like the file."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import gigafactory_sim
from gigafactory_sim.config.loader import load_scenario, parse_scenario_text
from gigafactory_sim.config.scenario import Scenario
from gigafactory_sim.errors import InputProblem, ScenarioError
from gigafactory_sim.random_streams import RandomStreams
from gigafactory_sim.workload.build import build_jobs

BASE = textwrap.dedent("""\
    seed: 1
    horizon: 1d
    facility:
      pue: 1.2
      clusters:
        - name: h200
          gpu: H200-SXM
          nodes: 4
          gpus_per_node: 8
          node_power: {idle_w: 1000, busy_w: 2500}
        - name: a100
          gpu: A100-80GB
          nodes: 2
          gpus_per_node: 4
    workload:
      training:
        - kind: synthetic
          name: research
          arrivals: {kind: poisson, rate_per_hour: 3}
          classes:
            - {name: small, share: 1, sizes: {kind: choice, gpus: [1, 8]}, duration: {kind: fixed, value: 1h}}
            - name: medium
              share: 0.2
              sizes: {kind: choice, gpus: [16, 32]}
              duration: {kind: lognormal, median: 2h}
    scheduler: {kind: easy_backfill, lookahead: 50}
    report: {interval: 1h}
    """)


def line_of(text: str, needle: str, nth: int = 0) -> int:
    """1-based line of the ``nth`` line of ``text`` containing ``needle``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    assert len(hits) > nth, f"{needle!r} not in the test scenario"
    return hits[nth]


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once"
    return text.replace(old, new)


def problems_of(text: str, tmp_path: Path, overrides: tuple[str, ...] = ()) -> tuple[Path, list[InputProblem]]:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return path, info.value.problems


def build(scenario: Scenario) -> None:
    """Read the scenario's data files and build its jobs (what a run does first)."""
    build_jobs(scenario, RandomStreams(scenario.seed))


def test_base_scenario_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(BASE, encoding="utf-8")
    scenario = load_scenario(path)
    assert scenario.name == "ok"  # named after the file
    assert scenario.horizon_s == 86400.0
    assert scenario.report.interval == 3600.0
    assert scenario.source_file == str(path)
    assert scenario.base_dir == tmp_path.resolve()
    assert [c.gpus for c in scenario.facility.clusters] == [32, 8]
    build(scenario)


# --- one problem each --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "field", "needle"),
    [
        ("  pue: 1.2", "  peu: 1.2", "facility.peu", "peu:"),
        ("      gpus_per_node: 8", "      gpus_per_nod: 8", "facility.clusters.0.gpus_per_nod", "gpus_per_nod:"),
        (
            "{idle_w: 1000, busy_w: 2500}",
            "{idle_w: 1000, busy: 2500}",
            "facility.clusters.0.node_power.busy",
            "busy: 2500",
        ),
        (
            "      duration: {kind: lognormal, median: 2h}",
            "      duration: {kind: lognormal, median: 2h, sigm: 1}",
            "workload.training.0.classes.1.duration.sigm",
            "sigm: 1",
        ),
        ("lookahead: 50", "look_ahead: 50", "scheduler.look_ahead", "look_ahead"),
        ("report: {interval: 1h}", "report: {interval: 1h, plot: false}", "report.plot", "plot: false"),
    ],
)
def test_typo_gives_one_problem_with_file_line_and_path(
    tmp_path: Path, old: str, new: str, field: str, needle: str
) -> None:
    text = edit(old, new)
    path, problems = problems_of(text, tmp_path)
    assert len(problems) == 1, problems
    p = problems[0]
    assert (p.file, p.line, p.field) == (str(path), line_of(text, needle), field)
    assert "unknown field" in p.message


@pytest.mark.parametrize(
    ("old", "new", "field", "needle", "words"),
    [
        ("horizon: 1d", "horizon: 30", "horizon", "horizon:", "unit"),
        ("horizon: 1d", "horizon: '30'", "horizon", "horizon:", "not a duration"),
        ("horizon: 1d", "horizon: 5x", "horizon", "horizon:", "not a duration"),
        ("horizon: 1d", "horizon: -1d", "horizon", "horizon:", "duration"),
        ("horizon: 1d", "horizon: 0s", "horizon", "horizon:", "positive"),
        ("report: {interval: 1h}", "report: {interval: 15}", "report.interval", "report:", "unit"),
        ("value: 1h}", "value: 1hour}", "workload.training.0.classes.0.duration.value", "name: small", "duration"),
        ("median: 2h}", "median: 2}", "workload.training.0.classes.1.duration.median", "median: 2}", "unit"),
    ],
)
def test_duration_without_unit_or_malformed(
    tmp_path: Path, old: str, new: str, field: str, needle: str, words: str
) -> None:
    text = edit(old, new)
    path, problems = problems_of(text, tmp_path)
    assert len(problems) == 1, problems
    p = problems[0]
    assert (p.file, p.line, p.field) == (str(path), line_of(text, needle), field)
    assert words in p.message


@pytest.mark.parametrize(
    ("old", "new", "field", "needle"),
    [
        ("      nodes: 4", "      nodes: -4", "facility.clusters.0.nodes", "nodes: -4"),
        ("      nodes: 2", "      nodes: 0", "facility.clusters.1.nodes", "nodes: 0"),
        ("      gpus_per_node: 4", "      gpus_per_node: 65", "facility.clusters.1.gpus_per_node", "gpus_per_node: 65"),
        ("pue: 1.2", "pue: 0.9", "facility.pue", "pue:"),
        ("seed: 1", "seed: -1", "seed", "seed:"),
        ("rate_per_hour: 3", "rate_per_hour: 0", "workload.training.0.arrivals.rate_per_hour", "arrivals:"),
        ("gpus: [16, 32]", "gpus: [16, -32]", "workload.training.0.classes.1.sizes.gpus.1", "gpus: [16, -32]"),
        ("{kind: easy_backfill, lookahead: 50}", "{kind: lifo}", "scheduler", "scheduler:"),
    ],
)
def test_bad_values(tmp_path: Path, old: str, new: str, field: str, needle: str) -> None:
    text = edit(old, new)
    path, problems = problems_of(text, tmp_path)
    assert len(problems) == 1, problems
    p = problems[0]
    assert (p.file, p.line, p.field) == (str(path), line_of(text, needle), field)


def test_unknown_gpu(tmp_path: Path) -> None:
    text = edit("gpu: A100-80GB", "gpu: H300")
    path, problems = problems_of(text, tmp_path)
    assert len(problems) == 1, problems
    p = problems[0]
    assert (p.file, p.line, p.field) == (str(path), line_of(text, "gpu: H300"), "facility.clusters.1.gpu")
    assert "H300" in p.message and "H200-SXM" in p.message  # names the known ones


def test_gpu_defined_in_the_scenario_is_known(tmp_path: Path) -> None:
    text = edit("gpu: A100-80GB", "gpu: H300") + textwrap.dedent("""\
        gpu_profiles:
          - {name: H300, board_limit_w: 1200, dense_bf16_tflops: 3000, memory_gb: 288, hbm_bandwidth_tbs: 10}
        """)
    scenario = parse_scenario_text(text, str(tmp_path / "x.yaml"))
    assert scenario.gpu_catalogue()["H300"].board_limit_w == 1200


def test_job_class_larger_than_any_cluster(tmp_path: Path) -> None:
    text = edit("gpus: [16, 32]", "gpus: [16, 64]")
    path, problems = problems_of(text, tmp_path)
    assert len(problems) == 1, problems
    p = problems[0]
    assert (p.file, p.line, p.field) == (
        str(path),
        line_of(text, "sizes: {kind: choice, gpus: [16, 64]}"),
        "workload.training.0.classes.1.sizes",
    )
    assert "64" in p.message and "32" in p.message


def test_job_class_larger_than_the_clusters_it_may_use(tmp_path: Path) -> None:
    """16-GPU jobs fit h200 (32 GPUs) but not a100 (8 GPUs), the only cluster this stream may use."""
    text = edit("      name: research\n", "      name: research\n      clusters: [a100]\n")
    _path, problems = problems_of(text, tmp_path)
    assert [p.field for p in problems] == ["workload.training.0.classes.1.sizes"]
    assert problems[0].line == line_of(text, "sizes: {kind: choice, gpus: [16, 32]}")


def test_unknown_cluster_name_in_workload(tmp_path: Path) -> None:
    text = edit("      name: research\n", "      name: research\n      clusters: [h200, h100]\n")
    path, problems = problems_of(text, tmp_path)
    cluster_problems = [p for p in problems if p.field == "workload.training.0.clusters.1"]
    assert len(cluster_problems) == 1, problems
    p = cluster_problems[0]
    assert (p.file, p.line) == (str(path), line_of(text, "clusters: [h200, h100]"))
    assert "h100" in p.message and "h200" in p.message
    assert len(problems) == 1, problems  # h200 is known and holds every job size: nothing else is wrong


def test_unknown_cluster_name_reports_no_spurious_size_problem(tmp_path: Path) -> None:
    """When every cluster a stream names is unknown, the one problem is the unknown name; the size check has
    no cluster to compare with and must not claim the jobs are larger than 'the largest: 0 GPUs'."""
    text = edit("      name: research\n", "      name: research\n      clusters: [h100]\n")
    _path, problems = problems_of(text, tmp_path)
    assert [p.field for p in problems] == ["workload.training.0.clusters.0"], [str(p) for p in problems]


def test_report_interval_longer_than_horizon(tmp_path: Path) -> None:
    text = edit("report: {interval: 1h}", "report: {interval: 2d}")
    _path, problems = problems_of(text, tmp_path)
    assert [(p.field, p.line) for p in problems] == [("report.interval", line_of(text, "report:"))]


def test_duplicate_cluster_names(tmp_path: Path) -> None:
    text = edit("name: a100", "name: h200")
    _path, problems = problems_of(text, tmp_path)
    assert len(problems) == 1
    assert problems[0].field == "facility" and "h200" in problems[0].message


# --- several problems at once ------------------------------------------------------------------------------------
def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = BASE
    for old, new in [
        ("pue: 1.2", "pue: 0.5"),
        ("nodes: 4", "nodes: 0"),
        ("value: 1h}", "value: 5x}"),
        ("      gpus_per_node: 4", "      gpus_per_nod: 4"),
        ("horizon: 1d", "horizon: 30"),
    ]:
        text = edit(old, new, text)
    path, problems = problems_of(text, tmp_path)
    got = {(p.field, p.line) for p in problems}
    assert got == {
        ("horizon", line_of(text, "horizon:")),
        ("facility.pue", line_of(text, "pue:")),
        ("facility.clusters.0.nodes", line_of(text, "nodes: 0")),
        ("facility.clusters.1.gpus_per_nod", line_of(text, "gpus_per_nod:")),
        ("workload.training.0.classes.0.duration.value", line_of(text, "name: small")),
    }, [str(p) for p in problems]
    assert all(p.file == str(path) for p in problems)


def test_several_semantic_problems_at_once(tmp_path: Path) -> None:
    text = edit("gpu: A100-80GB", "gpu: A10")
    text = edit("gpus: [16, 32]", "gpus: [16, 128]", text)
    text = edit("report: {interval: 1h}", "report: {interval: 3d}", text)
    _path, problems = problems_of(text, tmp_path)
    assert {p.field for p in problems} == {
        "facility.clusters.1.gpu",
        "workload.training.0.classes.1.sizes",
        "report.interval",
    }


# --- YAML and files ----------------------------------------------------------------------------------------------
def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    text = edit("    nodes: 4\n", "    nodes: [4\n")
    path, problems = problems_of(text, tmp_path)
    assert len(problems) == 1 and "invalid YAML" in problems[0].message
    assert problems[0].file == str(path) and problems[0].line is not None
    assert line_of(text, "nodes: [4") <= problems[0].line <= line_of(text, "nodes: [4") + 2


def test_scenario_must_be_a_mapping(tmp_path: Path) -> None:
    path, problems = problems_of("- just\n- a list\n", tmp_path)
    assert [(p.file, p.line) for p in problems] == [(str(path), 1)]


def test_missing_scenario_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "nope.yaml")
    assert [p.file for p in info.value.problems] == [str(tmp_path / "nope.yaml")]
    assert "not found" in info.value.problems[0].message


TRACE_SCENARIO = """\
horizon: 1d
facility:
  clusters:
    - {{name: h200, gpu: H200-SXM, nodes: 2, gpus_per_node: 8}}
workload:
  training:
    - kind: trace
      name: replay
      path: {path}
"""


def test_missing_trace_file(tmp_path: Path) -> None:
    """Reported (at load or when the jobs are built) against the trace's field, naming the missing file."""
    missing = tmp_path / "no-such-trace.csv"
    with pytest.raises(ScenarioError) as info:
        build(parse_scenario_text(TRACE_SCENARIO.format(path=missing.name), str(tmp_path / "s.yaml")))
    problems = info.value.problems
    assert len(problems) == 1
    assert problems[0].field == "workload.training.0.path"
    assert str(missing) in str(problems[0])
    assert "not found" in problems[0].message


def test_missing_trace_file_fails_the_run(tmp_path: Path) -> None:
    scenario = parse_scenario_text(TRACE_SCENARIO.format(path="gone.csv"), str(tmp_path / "s.yaml"))
    with pytest.raises(ScenarioError):
        gigafactory_sim.run(scenario)


@pytest.mark.parametrize(
    ("rows", "line", "column"),
    [
        (["0,8,3600", "10,4,3600", "20,2,36x0", "30,1,100"], 4, "duration_s"),  # bad number on line 4
        (["0,8,3600", "10,4,3600", "twenty,2,3600"], 4, "submit_s"),
        (["0,8,3600", "10,0,3600", "20,2,3600"], 3, "gpus"),  # zero GPUs
        (["0,8,3600", "10,4,3600", "20,2.5,3600"], 4, "gpus"),  # fractional GPUs
        (["0,8,3600", "10,4,3600", "20,2,3600", "30,1,"], 5, "duration_s"),  # empty cell
    ],
)
def test_malformed_trace_row_names_its_line(tmp_path: Path, rows: list[str], line: int, column: str) -> None:
    trace = tmp_path / "jobs.csv"
    trace.write_text("submit_s,gpus,duration_s\n" + "\n".join(rows) + "\n", encoding="utf-8")
    scenario = parse_scenario_text(TRACE_SCENARIO.format(path="jobs.csv"), str(tmp_path / "s.yaml"))
    with pytest.raises(ScenarioError) as info:
        build(scenario)
    problems = info.value.problems
    assert len(problems) == 1, problems
    p = problems[0]
    assert Path(p.file).resolve() == trace.resolve()
    assert p.line == line
    assert column in p.field and p.field.startswith("workload.training.0")


def test_trace_job_larger_than_any_cluster_names_its_line(tmp_path: Path) -> None:
    trace = tmp_path / "jobs.csv"
    trace.write_text("submit_s,gpus,duration_s\n0,8,3600\n10,32,3600\n20,2,3600\n", encoding="utf-8")
    scenario = parse_scenario_text(TRACE_SCENARIO.format(path="jobs.csv"), str(tmp_path / "s.yaml"))
    with pytest.raises(ScenarioError) as info:
        build(scenario)
    [p] = info.value.problems
    assert (Path(p.file).resolve(), p.line) == (trace.resolve(), 3)
    assert "32" in p.message and "16" in p.message


def test_trace_relative_to_the_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "jobs.csv").write_text("submit_s,gpus,duration_s\n5,8,3600\n9,16,60\n", encoding="utf-8")
    path = tmp_path / "s.yaml"
    path.write_text(TRACE_SCENARIO.format(path="data/jobs.csv"), encoding="utf-8")
    result = gigafactory_sim.run(load_scenario(path))
    assert result.summary["jobs"]["submitted"] == 2
    assert result.jobs["submit_s"].tolist() == [0.0, 4.0]  # align: first_job


# --- overrides ---------------------------------------------------------------------------------------------------
def test_overrides_apply(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BASE, encoding="utf-8")
    scenario = load_scenario(
        path,
        [
            "facility.clusters.0.nodes=2048",
            "horizon=7d",
            "facility.pue=1.4",
            "scheduler={kind: fifo}",
            "workload.training.0.classes.1.duration.sigma=0.5",
        ],
    )
    assert scenario.facility.clusters[0].nodes == 2048
    assert scenario.horizon_s == 7 * 86400.0
    assert scenario.facility.pue == 1.4
    assert scenario.scheduler.kind == "fifo"
    assert scenario.workload.training[0].classes[1].duration.sigma == 0.5
    assert load_scenario(path).facility.clusters[0].nodes == 4  # the file itself is untouched


def test_override_can_fix_the_file(tmp_path: Path) -> None:
    text = edit("nodes: 4", "nodes: -4")
    scenario = parse_scenario_text(text, "s.yaml", ["facility.clusters.0.nodes=6"])
    assert scenario.facility.clusters[0].nodes == 6


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("facility.clusters.0.nodes=-3", "facility.clusters.0.nodes"),
        ("facility.clusters.0.nodes=many", "facility.clusters.0.nodes"),
        ("horizon=30", "horizon"),
        ("facility.pue=7", "facility.pue"),
        ("report.interval=2d", "report.interval"),  # semantic: longer than the horizon
        ("facility.clusters.1.gpu=H300", "facility.clusters.1.gpu"),
    ],
)
def test_bad_override_is_reported_against_the_set(tmp_path: Path, override: str, field: str) -> None:
    _, problems = problems_of(BASE, tmp_path, (override,))
    assert len(problems) == 1, problems
    p = problems[0]
    set_path = override.split("=", 1)[0]
    assert p.file == f"--set {set_path}"
    assert p.line is None
    assert p.field == field


def test_override_with_an_unknown_field(tmp_path: Path) -> None:
    _, problems = problems_of(BASE, tmp_path, ("facility.clusters.0.gpus_per_nod=4",))
    assert [(p.file, p.field) for p in problems] == [
        ("--set facility.clusters.0.gpus_per_nod", "facility.clusters.0.gpus_per_nod")
    ]


@pytest.mark.parametrize("override", ["nodes", "facility.clusters.7.nodes=3", "=3", "seed.x=1"])
def test_malformed_override(tmp_path: Path, override: str) -> None:
    _, problems = problems_of(BASE, tmp_path, (override,))
    assert len(problems) == 1
    assert problems[0].file.startswith("--set")


def test_file_problems_keep_their_lines_beside_overrides(tmp_path: Path) -> None:
    text = edit("pue: 1.2", "pue: 0.2")
    path, problems = problems_of(text, tmp_path, ("facility.clusters.0.nodes=-1",))
    got = {(p.file, p.line, p.field) for p in problems}
    assert got == {
        (str(path), line_of(text, "pue:"), "facility.pue"),
        ("--set facility.clusters.0.nodes", None, "facility.clusters.0.nodes"),
    }


# --- schema ------------------------------------------------------------------------------------------------------
def test_json_schema() -> None:
    schema = Scenario.model_json_schema()
    text = json.dumps(schema)
    assert json.loads(text) == schema
    assert {"horizon", "facility"} <= set(schema["required"])
    for name in ("seed", "horizon", "facility", "workload", "scheduler", "power", "report"):
        assert name in schema["properties"]
    for word in ("easy_backfill", "fifo", "priority", "poisson", "diurnal", "synthetic", "trace", "interpolated"):
        assert f'"{word}"' in text
