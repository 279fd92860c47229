"""GPU power models: unit tables, and the H200 profile against the measured power curve
(tests/data/h200/SOURCE.md, copied from ../shared/data/gpu_power/h200/)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from gigafactory_sim.config.scenario import Cluster
from gigafactory_sim.gpus.catalogue import BUILTIN_GPUS, GpuProfile, get_gpu
from gigafactory_sim.power.models import DvfsPowerModel, GpuPowerModel, InterpolatedPowerModel, LinearPowerModel
from gigafactory_sim.sim.facility import PARKED_OVER_CONTEXT

H200_DATA = Path(__file__).resolve().parent / "data" / "h200"  # shipped in the repository: these tests always run
RUNS = ("power_vs_load_run1.csv", "power_vs_load_run2.csv")
TOLERANCE = 0.05


def measured_rows(workload: str) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    for name in RUNS:
        path = H200_DATA / name
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row["workload"] == workload:
                    rows.append({k: float(v) for k, v in row.items() if k != "workload"})
    assert rows, f"no {workload!r} rows in {RUNS}"
    return rows


@pytest.fixture(scope="module")
def h200() -> DvfsPowerModel:
    return BUILTIN_GPUS["H200-SXM"].power_model


def rel_err(model: float, measured: float) -> float:
    return abs(model / measured - 1.0)


# --- H200 against measurements -----------------------------------------------------------------------------------
def test_h200_gemm_power_matches_energy_counter(h200: DvfsPowerModel) -> None:
    """bf16 GEMM at each duty target: modelled power within 5 % of the board's energy counter (7 points, 2 runs)."""
    rows = measured_rows("gemm_bf16")
    errors = {r["duty_target"]: rel_err(h200.power_w(r["duty_target"]), r["energy_counter_w"]) for r in rows}
    print(f"H200 GEMM power: max error {max(errors.values()):.2%} at load {max(errors, key=errors.get):g}")
    assert len(rows) >= 8
    assert max(errors.values()) < TOLERANCE, errors


def test_h200_idle_power_matches(h200: DvfsPowerModel) -> None:
    rows = measured_rows("idle") + measured_rows("idle_after")
    errors = [rel_err(h200.idle_w, r["energy_counter_w"]) for r in rows]
    print(f"H200 idle power: max error {max(errors):.2%}")
    assert max(errors) < TOLERANCE
    assert h200.power_w(0.0) == h200.idle_w


def test_h200_parked_idle_matches_nvidia_smi_run() -> None:
    """Deep idle with no process (run 3, nvidia-smi): the engine's parked level, 78 W."""
    path = H200_DATA / "power_vs_load_run3_nvidia_smi.csv"
    with path.open(newline="", encoding="utf-8") as f:
        idle = [float(r["power_avg_W"]) for r in csv.DictReader(f) if r["phase"] == "idle"]
    assert idle
    parked_w = BUILTIN_GPUS["H200-SXM"].power_model.idle_w * PARKED_OVER_CONTEXT
    assert max(rel_err(parked_w, w) for w in idle) < TOLERANCE


def test_h200_memory_power_matches_hbm_copy(h200: DvfsPowerModel) -> None:
    rows = measured_rows("copy_hbm")
    errors = [rel_err(h200.memory_power_w(r["busy_fraction"]), r["energy_counter_w"]) for r in rows]
    print(f"H200 HBM copy power: max error {max(errors):.2%}")
    assert len(rows) == 4
    assert max(errors) < TOLERANCE


def test_h200_sustained_speed_at_full_load(h200: DvfsPowerModel) -> None:
    """At full offered load the 700 W limit bites: measured sustained fraction of burst 0.834-0.843."""
    full = [r for r in measured_rows("gemm_bf16") if r["duty_target"] == 1.0]
    assert len(full) == 2
    speed = h200.speed(1.0)
    for r in full:
        assert rel_err(speed, r["busy_fraction"]) < TOLERANCE
    assert 0.834 * (1 - TOLERANCE) < speed < 0.843 * (1 + TOLERANCE)
    assert BUILTIN_GPUS["H200-SXM"].sustained_tflops(1.0) == pytest.approx(990 * speed)


def test_h200_throughput_at_every_load(h200: DvfsPowerModel) -> None:
    """Work done per unit of burst time (``busy_fraction``) = offered load x sustained speed, within 5 %."""
    rows = measured_rows("gemm_bf16")
    errors = [rel_err(r["duty_target"] * h200.speed(r["duty_target"]), r["busy_fraction"]) for r in rows]
    print(f"H200 GEMM throughput: max error {max(errors):.2%}")
    assert max(errors) < TOLERANCE


# --- unit tables -------------------------------------------------------------------------------------------------
DVFS = DvfsPowerModel(idle_w=100.0, slope_w=800.0, limit_w=700.0, alpha=2.0, memory_slope_w=500.0)
LINEAR = LinearPowerModel(idle_w=100.0, max_w=600.0, limit_w=500.0)
INTERP = InterpolatedPowerModel(loads=(0.0, 0.5, 1.0), powers_w=(100.0, 400.0, 600.0), limit_w=500.0)


@pytest.mark.parametrize(
    ("model", "load", "limit_w", "demand_w", "power_w", "speed"),
    [
        # DVFS: demand 100 + 800 load; capped at min(limit, board 700), never below idle;
        # speed ((P-idle)/(D-idle))^(1/2)
        (DVFS, 0.0, None, 100.0, 100.0, 1.0),
        (DVFS, 0.5, None, 500.0, 500.0, 1.0),
        (DVFS, 0.75, None, 700.0, 700.0, 1.0),
        (DVFS, 1.0, None, 900.0, 700.0, math.sqrt(600.0 / 800.0)),
        (DVFS, 1.0, 400.0, 900.0, 400.0, math.sqrt(300.0 / 800.0)),
        (DVFS, 1.0, 900.0, 900.0, 700.0, math.sqrt(600.0 / 800.0)),  # a limit above the board limit does not raise it
        (DVFS, 1.0, 50.0, 900.0, 100.0, 0.0),  # a limit below idle: idle power, no progress
        (DVFS, 0.5, 500.0, 500.0, 500.0, 1.0),
        (DVFS, -0.2, None, 100.0, 100.0, 1.0),  # loads clip to [0, 1]
        (DVFS, 1.7, None, 900.0, 700.0, math.sqrt(600.0 / 800.0)),
        # linear: demand 100 + 500 load; board limit 500; speed linear in the power above idle
        (LINEAR, 0.0, None, 100.0, 100.0, 1.0),
        (LINEAR, 0.5, None, 350.0, 350.0, 1.0),
        (LINEAR, 1.0, None, 600.0, 500.0, 0.8),
        (LINEAR, 1.0, 300.0, 600.0, 300.0, 0.4),
        (LINEAR, 1.0, 50.0, 600.0, 100.0, 0.0),
        (LINEAR, 2.0, None, 600.0, 500.0, 0.8),
        # interpolated through (0, 100), (0.5, 400), (1, 600); board limit 500; DVFS law with alpha 1.9
        (INTERP, 0.25, None, 250.0, 250.0, 1.0),
        (INTERP, 0.5, None, 400.0, 400.0, 1.0),
        (INTERP, 0.75, None, 500.0, 500.0, 1.0),
        (INTERP, 1.0, None, 600.0, 500.0, (400.0 / 500.0) ** (1 / 1.9)),
        (INTERP, 1.0, 300.0, 600.0, 300.0, (200.0 / 500.0) ** (1 / 1.9)),
        (INTERP, -1.0, None, 100.0, 100.0, 1.0),
        (INTERP, 3.0, None, 600.0, 500.0, (400.0 / 500.0) ** (1 / 1.9)),
    ],
)
def test_power_model_table(
    model: GpuPowerModel, load: float, limit_w: float | None, demand_w: float, power_w: float, speed: float
) -> None:
    assert isinstance(model, GpuPowerModel)
    assert model.demand_w(load) == pytest.approx(demand_w, rel=1e-12)
    assert model.power_w(load, limit_w) == pytest.approx(power_w, rel=1e-12)
    assert model.speed(load, limit_w) == pytest.approx(speed, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("load", "expected_w"), [(0.0, 100.0), (0.5, 350.0), (1.0, 600.0), (2.0, 600.0)])
def test_dvfs_memory_power(load: float, expected_w: float) -> None:
    assert DVFS.memory_power_w(load) == pytest.approx(expected_w)
    steep = DvfsPowerModel(idle_w=100.0, slope_w=800.0, limit_w=700.0, memory_slope_w=1000.0)
    assert steep.memory_power_w(1.0) == 700.0  # memory-bound work is still bounded by the board limit


@pytest.mark.parametrize(
    "model",
    [DVFS, LINEAR, INTERP, BUILTIN_GPUS["H200-SXM"].power_model],
    ids=["dvfs", "linear", "interpolated", "h200"],
)
@pytest.mark.parametrize("load", [0.0, 0.3, 0.65, 0.9, 1.0])
def test_speed_and_power_monotone_in_the_cap(model: GpuPowerModel, load: float) -> None:
    caps = np.linspace(0.0, model.limit_w * 1.3, 301)
    speeds = np.array([model.speed(load, float(c)) for c in caps])
    powers = np.array([model.power_w(load, float(c)) for c in caps])
    assert (np.diff(speeds) >= -1e-12).all()
    assert (np.diff(powers) >= -1e-12).all()
    assert ((speeds >= 0.0) & (speeds <= 1.0)).all()
    assert (powers <= np.maximum(np.minimum(caps, model.limit_w), model.idle_w) + 1e-9).all()
    assert (powers <= model.demand_w(load) + 1e-9).all()
    assert (powers >= model.idle_w - 1e-9).all()
    assert model.speed(load, model.limit_w) == model.speed(load)


@pytest.mark.parametrize("model", [DVFS, LINEAR, INTERP], ids=["dvfs", "linear", "interpolated"])
def test_power_and_demand_monotone_in_load(model: GpuPowerModel) -> None:
    loads = np.linspace(-0.5, 1.5, 201)
    demand = np.array([model.demand_w(float(x)) for x in loads])
    power = np.array([model.power_w(float(x)) for x in loads])
    speed = np.array([model.speed(float(x)) for x in loads])
    assert (np.diff(demand) >= -1e-12).all()
    assert (np.diff(power) >= -1e-12).all()
    assert (np.diff(speed) <= 1e-12).all()  # more offered load under the same limit: slower clocks


@pytest.mark.parametrize(
    "model",
    [DVFS, BUILTIN_GPUS["H200-SXM"].power_model, BUILTIN_GPUS["B200"].power_model],
    ids=["dvfs", "h200", "b200"],
)
@pytest.mark.parametrize("load", [0.4, 0.65, 0.8, 1.0])
@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.9, 1.0])
def test_limit_for_speed_inverts_speed(model: DvfsPowerModel, load: float, fraction: float) -> None:
    """For every speed reachable under the board limit, speed(limit_for_speed(s)) = s, and that limit is the
    smallest one that sustains s."""
    target = fraction * model.speed(load)
    limit = model.limit_for_speed(load, target)
    assert model.idle_w <= limit <= model.limit_w + 1e-9
    assert model.speed(load, limit) == pytest.approx(target, rel=1e-9)
    if target < 1.0:
        assert model.speed(load, limit * (1 - 1e-6) + model.idle_w * 1e-6) < target


def test_limit_for_full_speed() -> None:
    assert DVFS.limit_for_speed(0.5, 1.0) == pytest.approx(500.0)  # demand under the board limit
    assert DVFS.limit_for_speed(1.0, 1.0) == 700.0  # unreachable: the board limit is the best there is


@pytest.mark.parametrize(
    ("loads", "powers"),
    [
        ((0.0,), (100.0,)),
        ((0.0, 1.0), (100.0,)),
        ((0.0, 1.0, 0.5), (100.0, 600.0, 400.0)),
    ],
)
def test_interpolated_model_rejects_bad_points(loads: tuple[float, ...], powers: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        InterpolatedPowerModel(loads=loads, powers_w=powers, limit_w=500.0)


def test_scenario_power_model_configs_build() -> None:
    linear = Cluster.model_validate(
        {"name": "a", "gpu": "H100-SXM", "nodes": 1, "power_model": {"kind": "linear", "idle_w": 90, "max_w": 800}}
    )
    model = linear.power_model.build(BUILTIN_GPUS["H100-SXM"])
    assert isinstance(model, LinearPowerModel)
    assert (model.idle_w, model.max_w, model.limit_w) == (90, 800, 700)
    interp = Cluster.model_validate(
        {
            "name": "b",
            "gpu": "H200-SXM",
            "nodes": 1,
            "power_model": {"kind": "interpolated", "points": [[1.0, 690], [0.0, 122], [0.5, 524]]},
        }
    )
    model2 = interp.power_model.build(BUILTIN_GPUS["H200-SXM"])
    assert isinstance(model2, InterpolatedPowerModel)
    assert model2.loads == (0.0, 0.5, 1.0) and model2.powers_w == (122, 524, 690)
    assert model2.limit_w == 700
    default = Cluster.model_validate({"name": "c", "gpu": "H200-SXM", "nodes": 1})
    assert default.power_model.build(BUILTIN_GPUS["H200-SXM"]) == BUILTIN_GPUS["H200-SXM"].power_model


# --- the catalogue -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BUILTIN_GPUS))
def test_builtin_gpu_figures(name: str) -> None:
    gpu = BUILTIN_GPUS[name]
    assert gpu.name == name
    assert get_gpu(name) is gpu
    for value in (gpu.board_limit_w, gpu.dense_bf16_tflops, gpu.memory_gb, gpu.hbm_bandwidth_tbs, gpu.dvfs_alpha):
        assert value > 0
    assert gpu.source
    model = gpu.power_model
    assert 0 < model.idle_w < model.limit_w == gpu.board_limit_w
    assert model.slope_w > 0 and model.memory_slope_w > 0
    assert model.idle_w < model.power_w(0.65) <= model.power_w(1.0) <= model.limit_w
    assert model.memory_power_w(1.0) <= model.limit_w
    assert 0 < model.speed(1.0) <= 1.0
    assert 0 < gpu.sustained_tflops(1.0) <= gpu.dense_bf16_tflops
    assert model.idle_w * PARKED_OVER_CONTEXT < model.idle_w


def test_builtin_gpus_match_references() -> None:
    """Board limits and peaks from ../shared/REFERENCES.md ("GPUs")."""
    expected = {
        "A100-80GB": (400, 312, 80),
        "H100-SXM": (700, 990, 80),
        "H200-SXM": (700, 990, 141),
        "B200": (1000, 2250, 192),
        "MI300X": (750, 1300, 192),
    }
    assert {n: (g.board_limit_w, g.dense_bf16_tflops, g.memory_gb) for n, g in BUILTIN_GPUS.items()} == expected


def test_get_gpu_unknown_and_extra() -> None:
    with pytest.raises(KeyError, match="H300"):
        get_gpu("H300")
    extra = GpuProfile(name="H300", board_limit_w=1200, dense_bf16_tflops=3000, memory_gb=288, hbm_bandwidth_tbs=10)
    assert get_gpu("H300", {"H300": extra}) is extra
    assert extra.power_model.idle_w == pytest.approx(1200 * 122 / 700)
