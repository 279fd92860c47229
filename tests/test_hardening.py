"""Issue 10: no input crashes, hangs or exhausts the machine; interrupted work is never lost.

One named test per case the issue lists. Each runs the command in-process (typer's runner) at a tiny horizon and
checks the exit code, that the message names the file, line and field, and that no traceback is printed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gigafactory_sim.cli import app
from gigafactory_sim.config.loader import load_scenario
from gigafactory_sim.config.safe_yaml import MAX_NODES, YamlRejected, load_checked
from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.estimate import Limits, check_limits, estimate
from gigafactory_sim.units import parse_duration_s

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
runner = CliRunner()

SMALL = """\
name: small
horizon: 2h
facility:
  clusters:
    - {name: a, gpu: H200-SXM, nodes: 4}
workload:
  training:
    - kind: synthetic
      name: s
      arrivals: {kind: poisson, rate_per_hour: 10}
      classes:
        - {name: c, share: 1, sizes: {kind: choice, gpus: [1, 8]}, duration: {kind: fixed, value: 10m}}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def validate(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["validate", *args])
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res.exit_code, res.output


def quick(*sets: str) -> tuple[int, str]:
    args = [str(QUICKSTART), "--set", "horizon=1h"]
    for s in sets:
        args += ["--set", s]
    return validate(*args)


# -- tracebacks --------------------------------------------------------------------------------------------
def test_nodes_1e12_is_an_input_error(tmp_path: Path) -> None:
    for value in ("1e12", "1.0e+12", "1000000000000"):
        code, out = quick(f"facility.clusters.0.nodes={value}")
        assert code == 2 and "facility.clusters.0.nodes" in out, (value, out)


@pytest.mark.parametrize("horizon", ["1e308d", "1e400s", "1e99999s", "99999999999999999999w"])
def test_overflowing_horizons_are_input_errors(tmp_path: Path, horizon: str) -> None:
    code, out = quick(f"horizon={horizon}")
    assert code == 2 and "horizon" in out and "out of range" in out
    p = write(tmp_path, SMALL.replace("horizon: 2h", f"horizon: {horizon}"))
    code, out = validate(str(p))
    assert code == 2 and f"{p}:2: horizon" in out


def test_duration_parser_bounds() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_duration_s("1e308d")
    assert parse_duration_s("1.1h") == 3960.0


def test_deeply_nested_yaml_in_a_file_and_in_set(tmp_path: Path) -> None:
    p = write(tmp_path, SMALL + "description: " + "[" * 5000 + "]" * 5000 + "\n")
    code, out = validate(str(p))
    assert code == 2 and "nesting deeper than" in out and f"{p}:" in out
    code, out = quick("description=" + "[" * 5000)
    assert code == 2 and "--set" in out and "nesting deeper" in out


def test_alias_bomb_in_set_is_refused() -> None:
    bomb = (
        "{a: &a [x,x,x,x,x,x,x,x,x,x], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], "
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], "
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], f: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]}"
    )
    t0 = time.perf_counter()
    code, out = quick(f"description={bomb}")
    assert code == 2 and "expands to more than" in out
    assert time.perf_counter() - t0 < 5
    with pytest.raises(YamlRejected, match="refers to itself"):
        load_checked("a: &a [*a]")
    with pytest.raises(YamlRejected, match=f"{MAX_NODES:,}"):
        load_checked(bomb)


@pytest.mark.parametrize("value", ["[unclosed", "{a: b: c}", "'open", "!!python/object:os.system ls", "@x"])
def test_set_values_that_are_not_yaml(value: str) -> None:
    code, out = quick(f"name={value}")
    assert code == 2 and "--set" in out and "name" in out


def test_inference_trace_whose_requests_share_one_timestamp_runs(tmp_path: Path) -> None:
    (tmp_path / "same.csv").write_text("arrival_s,prompt_tokens,output_tokens\n5,100,10\n5,200,20\n5,300,30\n")
    for loop in ("true", "false"):
        p = write(
            tmp_path,
            f"""\
horizon: 1h
facility:
  clusters: [{{name: a, gpu: H200-SXM, nodes: 2}}]
workload:
  inference:
    - name: svc
      model: {{name: llama-3-8b, params_b: 8.03, layers: 32, kv_heads: 8, head_dim: 128}}
      demand: {{kind: trace, path: same.csv, loop: {loop}}}
      autoscaler: {{min_replicas: 1, max_replicas: 2}}
""",
        )
        out = tmp_path / f"run-{loop}"
        res = runner.invoke(app, ["run", str(p), "--out", str(out), "-q", "--set", "report.plots=false"])
        assert res.exit_code == 0, res.output
        assert json.loads((out / "run.json").read_text())["status"] == "completed"


def test_grid_temperature_without_a_path(tmp_path: Path) -> None:
    p = write(tmp_path, SMALL + "grid:\n  temperature: {}\n")
    code, out = validate(str(p))
    assert code == 2 and f"{p}:14: grid.temperature" in out and "give its path" in out


def test_out_whose_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    res = runner.invoke(app, ["run", str(QUICKSTART), "--set", "horizon=1h", "-q", "--out", str(tmp_path / "f" / "r")])
    assert res.exit_code == 2 and "is a file, not a folder" in res.output
    res = runner.invoke(app, ["run", str(QUICKSTART), "--set", "horizon=1h", "-q", "--out", str(tmp_path / "f")])
    assert res.exit_code == 2 and "not a directory" in res.output


def test_out_under_proc_is_an_input_error() -> None:
    if not Path("/proc/self").exists():
        pytest.skip("no /proc")
    res = runner.invoke(app, ["run", str(QUICKSTART), "--set", "horizon=1h", "-q", "--out", "/proc/gfs-x/run"])
    assert res.exit_code == 2 and "cannot write" in res.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_an_unwritable_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        res = runner.invoke(app, ["run", str(QUICKSTART), "--set", "horizon=1h", "-q", "--out", str(ro / "r")])
        assert res.exit_code == 2 and "cannot write" in res.output
    finally:
        ro.chmod(0o700)


def test_out_in_an_immutable_folder(tmp_path: Path) -> None:
    folder = tmp_path / "imm"
    folder.mkdir()
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip("chattr +i not available here")
    try:
        res = runner.invoke(app, ["run", str(QUICKSTART), "--set", "horizon=1h", "-q", "--out", str(folder / "r")])
        assert res.exit_code == 2 and "cannot write" in res.output
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=False)


# -- memory exhaustion and hangs: refused by the estimate ---------------------------------------------------
@pytest.mark.parametrize(
    "override, field",
    [
        ("horizon=10000w", "workload.training.0.arrivals"),
        ("workload.training.0.arrivals.mean_rate_per_hour=1e12", "workload.training.0.arrivals"),
        ("report.interval=1e-9s", "report.interval"),
    ],
)
def test_runs_beyond_the_limits_are_refused_with_the_estimate(override: str, field: str) -> None:
    t0 = time.perf_counter()
    code, out = validate(str(QUICKSTART), "--set", override)
    assert code == 2, out
    assert field in out and "the run would" in out and "--max-" in out and "limits:" in out
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize(
    "override",
    [
        "workload.training.0.arrivals.mean_rate_per_hour=.inf",
        "workload.training.0.arrivals.peak_to_trough=.inf",
        "workload.training.0.arrivals.mean_rate_per_hour=1e400",
    ],
)
def test_infinite_rates_are_refused(override: str) -> None:
    code, out = quick(override)
    assert code == 2 and "finite" in out


@pytest.mark.parametrize(
    "scenario, override, field, why",
    [  # each crashed with a traceback, or ran to NaN, before numbers were bounded (twelfth session)
        ("failures.yaml", "workload.training.0.tenants=1000000000000000000000000000000", "tenants", "2**53"),
        (
            "failures.yaml",
            "workload.training.0.classes.0.priority=-1000000000000000000000000000000",
            "priority",
            "2**53",
        ),
        ("inference-heavy.yaml", "workload.inference.0.demand.mean_rate_per_s=1e308", "mean_rate_per_s", "1e30"),
        ("inference-heavy.yaml", "workload.inference.0.demand.mean_rate_per_s=1e29", "mean_rate_per_s", "2**53"),
        ("inference-heavy.yaml", "workload.inference.1.demand.rate_scale=1e308", "rate_scale", "1e30"),
        ("eed-site.yaml", "grid.renewables.solar_mw=1e308", "solar_mw", "1e30"),
        ("eed-site.yaml", "grid.renewables.ppa.0.mw=1e31", "mw", "1e30"),
        ("quickstart.yaml", "workload.training.0.classes.0.sizes.gpus=[1, 10000000000000000000]", "gpus", "2**53"),
        ("quickstart.yaml", "workload.training.0.classes.0.duration.sigma=1e20", "sigma", "less than or equal to 10"),
        ("inference-heavy.yaml", "workload.inference.0.prompt_tokens.sigma=11", "sigma", "less than or equal to 10"),
    ],
)
def test_numbers_too_large_to_compute_with_are_refused(scenario: str, override: str, field: str, why: str) -> None:
    code, out = validate(str(ROOT / "scenarios" / scenario), "--set", "horizon=1h", "--set", override)
    assert code == 2, out
    assert override.split("=")[0] in out and field in out and why in " ".join(out.split()), out


def test_the_bounds_on_numbers_are_the_largest_a_double_computes_with() -> None:
    from gigafactory_sim.config.base import MAX_FLOAT, MAX_INT, out_of_range

    assert MAX_INT == 2**53 and float(MAX_INT) == MAX_INT and float(MAX_INT + 1) == MAX_INT  # the last exact count
    assert float("inf") > MAX_FLOAT**10  # products of ten scenario numbers stay finite
    for fine in (MAX_INT, -MAX_INT, MAX_FLOAT, -MAX_FLOAT, True, [1, 2.5], {"a": 3}, "text", None):
        assert out_of_range(fine) is None, fine
    for too_large in (MAX_INT + 1, -(MAX_INT + 1), 1.01e30, [1, 2**60], {"a": [1e31]}, (1, 1e300)):
        assert out_of_range(too_large) is not None, too_large


def test_limits_can_be_raised_in_the_scenario_or_on_the_command_line(tmp_path: Path) -> None:
    sc = load_scenario(QUICKSTART, ["horizon=1h"])
    est = estimate(sc)
    assert 0 < est.jobs < 100 and est.report_rows == 4
    with pytest.raises(ScenarioError, match="max-events"):
        check_limits(sc, Limits(max_events=10))
    sc = load_scenario(QUICKSTART, ["horizon=1h", "limits={max_memory: 1GB, max_events: 10}"])
    assert Limits.resolve(sc).max_events == 10 and Limits.resolve(sc).max_memory_bytes == 1e9
    assert Limits.resolve(sc, "2GiB", 1e9) == Limits(2 * 2**30, 1e9)
    code, out = validate(str(QUICKSTART), "--set", "limits.max_events=10")
    assert code == 2 and "--set limits" not in out and "limit of 10 events" in out
    code, _ = validate(str(QUICKSTART), "--set", "limits.max_events=10", "--max-events", "1e9")
    assert code == 0


def test_shipped_scenarios_fit_the_default_limits() -> None:
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        check_limits(load_scenario(path), Limits())


# -- accepted though wrong --------------------------------------------------------------------------------
def test_duplicate_keys_name_both_lines(tmp_path: Path) -> None:
    p = write(tmp_path, SMALL + "report: {interval: 15m}\nreport: {interval: 30m}\n")
    code, out = validate(str(p))
    assert code == 2 and f"{p}:14: report: duplicate key 'report' (first at line 13)" in out
    p = write(tmp_path, SMALL.replace("nodes: 4}", "nodes: 4, nodes: 8}"))
    code, out = validate(str(p))
    assert code == 2 and f"{p}:5: facility.clusters.0.nodes: duplicate key" in out


def test_shipped_scenarios_have_no_duplicate_keys() -> None:
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        load_checked(path.read_text())  # raises on a repeated key


def test_daily_cap_window_below_the_idle_floor() -> None:
    code, out = quick(
        "energy={power_cap_mw: {kind: daily, base_mw: 1, windows: [{from_h: 18, to_h: 21, "
        "mw: 0.05}]}, policies: [{kind: admission}]}"
    )
    assert code == 2 and "energy.power_cap_mw.windows.0.mw" in out and "idle power" in out
    code, out = quick("energy={power_cap_mw: 0.01, policies: [{kind: admission}]}")
    assert code == 2 and "idle power" in out
    code, _ = quick("energy={power_cap_mw: 1, policies: [{kind: admission}]}")
    assert code == 0


def test_infinite_failure_rate() -> None:
    code, out = quick("facility.failures={rate_per_node_day: .inf}")
    assert code == 2 and "facility.failures.rate_per_node_day" in out and "finite" in out


def test_maintenance_of_more_nodes_than_the_cluster_has() -> None:
    code, out = quick("facility.failures={rate_per_node_day: 0.001, maintenance: [{duration: 1h, nodes: 65}]}")
    assert code == 2 and "facility.failures.maintenance.0.nodes" in out and "has 64" in out


@pytest.mark.parametrize("value", [".inf", "1e400", "1.0e+300"])
def test_infinite_or_absurd_node_power(value: str) -> None:
    code, out = quick(f"facility.clusters.0.node_power.busy_w={value}")
    assert code == 2 and "facility.clusters.0.node_power.busy_w" in out


def test_trace_with_1e20_gpus(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("submit_s,gpus,duration_s\n0,8,3600\n10,100000000000000000000,3600\n")
    p = write(
        tmp_path,
        "horizon: 1d\nfacility:\n  clusters: [{name: a, gpu: H200-SXM, nodes: 4}]\n"
        "workload:\n  training: [{kind: trace, name: t, path: t.csv}]\n",
    )
    code, out = validate(str(p))
    assert code == 2 and f"{tmp_path / 't.csv'}:3:" in out and "gpus" in out


# -- error paths -------------------------------------------------------------------------------------------
def test_typo_in_a_daily_cap_window_is_reported_once_on_its_line(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "power-capped.yaml").read_text().replace("{from_h: 18, to_h", "{from_hour: 18, to_h")
    p = write(tmp_path, text)
    code, out = validate(str(p))
    assert code == 2
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "from_hour" in t)
    assert f"{p}:{line}: energy.power_cap_mw.windows.0.from_hour: unknown field" in out
    assert "tagged-union" not in out and "constrained-float" not in out and "valid number" not in out


def test_problems_found_while_building_name_the_line(tmp_path: Path) -> None:
    p = write(tmp_path, SMALL.replace("clusters:\n", "pue: {kind: temperature}\n  clusters:\n"))
    code, out = validate(str(p))
    assert code == 2 and f"{p}:4: facility.pue" in out


# -- signals and crashes -----------------------------------------------------------------------------------
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gigafactory_sim", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_run_and_writes_the_partial_tables(tmp_path: Path, sig: int, code: int) -> None:
    out = tmp_path / "run"
    # a long horizon of a tiny facility: the signal lands while simulating
    proc = subprocess.Popen(
        _cli("run", str(QUICKSTART), "--out", str(out), "-q", "--set", "horizon=400d", "--set", "report.plots=false"),
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted"
    reached = meta["interrupted"]["simulated_s"]
    assert 0 <= reached < 400 * 86400
    if (out / "summary.json").exists():  # stopped while simulating: the tables so far, marked partial
        summary = json.loads((out / "summary.json").read_text())
        assert summary["partial"]["simulated_s"] == reached and summary["horizon_s"] == reached
        import pandas as pd

        ts = pd.read_parquet(out / "timeseries.parquet")
        assert ts["t_end_s"].iloc[-1] == pytest.approx(reached)
    # a rerun with the same --out replaces the interrupted run
    res = runner.invoke(app, ["run", str(QUICKSTART), "--out", str(out), "-q", "--set", "horizon=1h"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "run.json").read_text())["status"] == "completed"


def test_a_completed_run_is_replaced_only_with_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", str(QUICKSTART), "--out", str(out), "-q", "--set", "horizon=1h"]
    assert runner.invoke(app, args).exit_code == 0
    first = (out / "run.json").read_text()
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert (out / "run.json").read_text() == first
    res = runner.invoke(app, [*args, "--overwrite", "--seed", "3"])
    assert res.exit_code == 0
    assert json.loads((out / "run.json").read_text())["seed"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_out_holding_other_files_is_never_replaced(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    res = runner.invoke(app, ["run", str(QUICKSTART), "--out", str(out), "-q", "--set", "horizon=1h", "--overwrite"])
    assert res.exit_code == 2 and "not a run directory" in res.output
    assert (out / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("name", ["quickstart.yaml", "eu-federation.yaml"])
def test_a_stop_requested_mid_run_closes_every_figure_at_the_time_reached(name: str) -> None:
    """``request_stop`` (what SIGINT calls) on a single site and on a federation: the run ends at the event after
    the request, and the tables end there."""
    import gigafactory_sim as g
    from gigafactory_sim.api import build, execute, prepare_any

    scenario = g.load_scenario(ROOT / "scenarios" / name, ["horizon=2d"])
    sim = build(prepare_any(scenario))
    sim.env.timeout(6 * 3600.0).callbacks.append(lambda _e: sim.request_stop())
    result = execute(sim)
    assert sim.stopped_at_s == 6 * 3600.0
    assert result.summary["horizon_s"] == 6 * 3600.0
    assert result.timeseries["t_end_s"].iloc[-1] == pytest.approx(6 * 3600.0)


def test_a_trace_at_a_huge_rate_is_counted_over_the_horizon_not_by_its_rows() -> None:
    """A looped request trace at rate_scale 1e9 lays ~3e15 requests over a week: fine for the fluid model (it
    counts them), refused with exit 2 for the discrete one (it would simulate each), never a crash. Beyond 2**53
    requests (rate_scale 1e30) both refuse it: a double no longer counts them exactly."""
    path = ROOT / "scenarios" / "inference-heavy.yaml"
    fast = ["--set", "workload.inference.1.demand.rate_scale=1e9"]
    res = runner.invoke(app, ["validate", str(path), *fast])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["validate", str(path), *fast, "--set", "workload.inference.1.fidelity=discrete"])
    assert res.exit_code == 2, res.output
    assert "workload.inference.1.demand" in res.output and "requests, each simulated" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["validate", str(path), "--set", "workload.inference.1.demand.rate_scale=1e30"])
    assert res.exit_code == 2, res.output
    assert "workload.inference.1.demand.rate_scale" in res.output and "2**53" in res.output, res.output
    for scale in ("1e6", "1e10"):  # block hashes: one pass replayed; the autoscaler asks for its most
        cache = ["--set", f"workload.inference.0.demand.rate_scale={scale}"]
        res = runner.invoke(app, ["validate", str(ROOT / "scenarios" / "prefix-cache.yaml"), *cache])
        assert res.exit_code == 0, res.output
    from gigafactory_sim.inference.autoscaler import AutoscalerPolicy
    from gigafactory_sim.inference.config import Autoscaler

    policy = AutoscalerPolicy(Autoscaler(min_replicas=2, max_replicas=7), 1.0)
    assert [policy.needed(x) for x in (0.0, 3.5, 1e300, float("inf"))] == [2, 5, 7, 7]
