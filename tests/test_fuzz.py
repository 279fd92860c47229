"""Fuzz (issue 10): mutations of the shipped scenarios never crash, hang or exhaust the machine.

Hypothesis picks a shipped scenario and a field in it and drops the key, misspells it, retypes its value, negates
it, zeroes it, or makes it huge or non-finite. Every mutant must end as ``validate`` exit 0 or 2 (never a
traceback), quickly; small facilities that validate are also simulated for a short horizon, in process, with no
numpy overflow or invalid value on the way (a RuntimeWarning fails the case). A few
mutants run through the real command line in a subprocess under a memory limit.
"""

from __future__ import annotations

import copy
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gigafactory_sim.api import run
from gigafactory_sim.cli import app
from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.estimate import Limits, check_limits

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
DOCS = {p.name: yaml.safe_load(p.read_text()) for p in SCENARIOS}
SMALL_GPUS = 25_000  # facilities up to this size are also simulated after validating
HORIZON = "2h"
runner = CliRunner()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        out.append((*prefix, key))
        out += _paths(value, (*prefix, key))
    return out


def _mutate(value: Any, how: str, draw_str: str) -> Any:
    return {
        "string": draw_str,
        "list": [value],
        "mapping": {"x": value},
        "none": None,
        "bool": True,
        "negate": -value if isinstance(value, int | float) and not isinstance(value, bool) else f"-{value}",
        "zero": 0,
        "huge": 10**30,
        "huge_float": 1e308,
        "inf": float("inf"),
        "nan": float("nan"),
        "huge_duration": "1e300w",
        "tiny_duration": "1e-9s",
    }[how]


MUTATIONS = [
    "drop",
    "misspell",
    "string",
    "list",
    "mapping",
    "none",
    "bool",
    "negate",
    "zero",
    "huge",
    "huge_float",
    "inf",
    "nan",
    "huge_duration",
    "tiny_duration",
]


@st.composite
def mutants(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    name = draw(st.sampled_from(sorted(DOCS)))
    doc = copy.deepcopy(DOCS[name])
    doc["horizon"] = HORIZON
    path = draw(st.sampled_from(_paths(doc)))
    how = draw(st.sampled_from(MUTATIONS))
    parent: Any = doc
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    if how == "drop":
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    elif how == "misspell":
        if isinstance(parent, dict):
            parent[f"{key}x"] = parent.pop(key)
        else:
            parent[key] = {"typo": parent[key]}
    else:
        parent[key] = _mutate(parent[key], how, draw(st.text(max_size=8)))
    return name, doc, f"{how} {'.'.join(map(str, path))}"


def _gpus(scenario: Any) -> int:
    return int(scenario.gpus if hasattr(scenario, "sites") else scenario.facility.gpus)


@settings(
    max_examples=int(os.environ.get("GFS_FUZZ_EXAMPLES", "150")),
    deadline=20_000,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("GFS_FUZZ_RANDOM") is None,
)
@given(mutants())
def test_mutated_scenarios_end_in_exit_0_or_2(case: tuple[str, dict[str, Any], str]) -> None:
    name, doc, what = case
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    t0 = time.perf_counter()
    try:
        scenario = parse_scenario_text(text, name, base_dir=ROOT / "scenarios")
        check_limits(scenario, Limits())
    except ScenarioError as exc:
        assert exc.problems, what
        assert all(p.message for p in exc.problems), what
        return
    finally:
        assert time.perf_counter() - t0 < 10, f"{what}: validation took too long"
    # valid: building (and, for small facilities, running) must not crash either
    path = ROOT / "scenarios" / f".fuzz-{os.getpid()}-{name}"
    path.write_text(text)
    try:
        res = runner.invoke(app, ["validate", str(path)])
    finally:
        path.unlink()
    assert res.exit_code in (0, 2), f"{what}: {res.output} {res.exception!r}"
    assert res.exception is None or isinstance(res.exception, SystemExit), f"{what}: {res.exception!r}"
    if res.exit_code == 0 and _gpus(scenario) <= SMALL_GPUS:
        with warnings.catch_warnings():  # a scenario that validates computes in finite numbers: no overflow,
            warnings.simplefilter("error", RuntimeWarning)  # no invalid value (inf - inf) on the way
            result = run(scenario)
        assert result.summary["horizon_s"] == scenario.horizon_s, what


def _limited() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))


@pytest.mark.parametrize(
    "override",
    [
        "workload.training.0.arrivals.rate_per_hour=1e12",
        "horizon=10000w",
        "report.interval=1e-9s",
        "facility.clusters.0.nodes=1e12",
    ],
)
def test_cli_mutants_stay_within_time_and_memory(tmp_path: Path, override: str) -> None:
    """The real command line under a 4 GiB address-space limit (and --max-memory 1GB, as the estimate counts
    resident memory, not the interpreter's address space): refused (exit 2) quickly, no traceback."""
    scenario = (
        ROOT / "scenarios" / "philly-replay.yaml"
        if "rate_per_hour" not in override
        else ROOT / "scenarios" / "benchmark-year.yaml"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gigafactory_sim",
            "run",
            str(scenario),
            "--set",
            override,
            "-q",
            "--max-memory",
            "1GB",
            "--out",
            str(tmp_path / "r"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limited,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "error" in proc.stderr
    assert not (tmp_path / "r").exists()
