"""Machine-independent floats (gigafactory_sim/numerics/libm.py): the C library's value for every element, numpy's
special values, no direct call of a CPU-dispatched numpy function in the package, and golden outputs unchanged
with numpy's SIMD kernels switched off."""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gigafactory_sim.numerics import libm

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gigafactory_sim"

# numpy functions whose float64 kernels depend on the CPU (AVX-512: numpy's own exp/log, SVML for the others; BLAS
# kernels for dot), so that a result could differ from one machine to another
DISPATCHED = {
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "power", "float_power", "sin", "cos", "tan",
    "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "cbrt",
    "logspace", "geomspace", "dot", "vdot", "inner", "matmul", "einsum", "tensordot",
}  # fmt: skip


def _values(rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([rng.normal(0.0, 5.0, 2000), rng.uniform(-700.0, 700.0, 500), [0.0, -0.0, 1.0, -1.0]])


@pytest.mark.parametrize(
    ("fn", "ref", "positive"),
    [
        (libm.exp, math.exp, False),
        (libm.expm1, math.expm1, False),
        (libm.cos, math.cos, False),
        (libm.log, math.log, True),
        (libm.log10, math.log10, True),
    ],
)
def test_every_element_is_the_c_librarys(fn, ref, positive) -> None:  # type: ignore[no-untyped-def]
    x = _values(np.random.default_rng(3))
    x = np.abs(x) + 1e-300 if positive else x
    got = fn(x.reshape(4, -1))
    assert got.shape == (4, x.size // 4)
    assert got.ravel().tolist() == [ref(v) for v in x.tolist()]


def test_power_and_logspace_are_the_c_librarys() -> None:
    x = np.abs(_values(np.random.default_rng(4)))
    for y in (0.37, 1.0 / 1.9, 3.0, -0.5):
        assert libm.power(x + 1e-3, y).tolist() == [math.pow(v + 1e-3, y) for v in x.tolist()]
    grid = np.linspace(-4, 6, 4001)
    assert libm.logspace(-4, 6, 4001).tolist() == [math.pow(10.0, v) for v in grid.tolist()]


def test_special_values_follow_numpy() -> None:
    inf, nan = math.inf, math.nan
    assert libm.exp([1000.0, -1000.0, inf, -inf]).tolist() == [inf, 0.0, inf, 0.0]
    assert np.isnan(libm.exp([nan])).all()
    assert libm.expm1([1000.0, -inf]).tolist() == [inf, -1.0]
    for log in (libm.log, libm.log10):
        out = log([0.0, -0.0, inf, -1.0, nan])
        assert out[:3].tolist() == [-inf, -inf, inf]
        assert np.isnan(out[3:]).all()
    assert np.isnan(libm.cos([inf, -inf, nan])).all()
    assert libm.power([0.0, 1e300, 4.0], -1.0).tolist()[0] == inf
    assert libm.power([1e300], 2.0).tolist() == [inf]
    assert np.isnan(libm.power([-8.0], 0.5)).all()
    assert libm.power([-8.0], 3.0).tolist() == [-512.0]
    assert libm.exp(np.empty((0, 3))).shape == (0, 3)


def test_dot_is_correctly_rounded_whatever_the_order() -> None:
    a = [1e16, 1.0, -1e16, 1.0]
    b = [1.0, 1.0, 1.0, 1.0]
    assert libm.dot(a, b) == 2.0  # a running sum in this order gives 1.0 (1e16 + 1 rounds to 1e16)
    assert libm.dot(a[::-1], b) == libm.dot(a, b)
    with pytest.raises(ValueError, match="shapes"):
        libm.dot([1.0, 2.0], [1.0])


def _direct_calls(source: str) -> list[tuple[int, str]]:
    """(line, name) of every ``np.<CPU-dispatched function>`` in ``source``, but on a line marked ``# any
    machine:`` (a use whose result cannot depend on the kernel)."""
    lines = source.splitlines()
    return [
        (node.lineno, node.attr)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("np", "numpy")
        and node.attr in DISPATCHED
        and "# any machine:" not in lines[node.lineno - 1]
    ]


def test_the_package_calls_no_cpu_dispatched_numpy_function() -> None:
    """A direct ``np.exp(...)`` (or log, power, dot, ...) anywhere in the package would make its result depend on
    the machine again: they go through gigafactory_sim/numerics/libm.py. A line marked ``# any machine:`` says why
    its result cannot depend on the kernel (the histogram's bin guess, corrected exactly against the edges)."""
    found = [
        f"{path.relative_to(ROOT)}:{line}: np.{name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.parent.name != "numerics"
        for line, name in _direct_calls(path.read_text())
    ]
    assert found == []


def test_the_scan_sees_a_direct_call() -> None:
    source = "import numpy as np\ny = np.exp(x)\nz = np.log10(x)  # any machine: a guess\nw = np.sqrt(x)\n"
    assert _direct_calls(source) == [(2, "exp")]


# every SIMD target numpy could dispatch to, in numpy 2.4's group names and the older feature names
NO_SIMD = "X86_V3 X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX2 FMA3 F16C AVX"

_GOLDEN_CHILD = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("make_golden", sys.argv[1])
mg = importlib.util.module_from_spec(spec); spec.loader.exec_module(mg)
print(json.dumps({name: mg.golden_of(name) for name in sys.argv[2:]}))
"""


def test_golden_outputs_do_not_depend_on_numpys_simd_kernels() -> None:
    """The committed golden outputs (made with numpy's kernels for the machine) again with every SIMD target
    numpy could pick switched off (``NPY_DISABLE_CPU_FEATURES``): on a machine with AVX-512 this is where numpy's
    own exp and log and SVML would have given other floats. The cases cover the workload draws, the failures,
    and the burst-aware fluid (prefill-first and its Poisson tables)."""
    cases = ["quickstart.yaml", "failures.yaml", "inference-heavy.yaml"]
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": NO_SIMD}
    out = subprocess.run(
        [sys.executable, "-c", _GOLDEN_CHILD, str(ROOT / "tests" / "golden" / "make_golden.py"), *cases],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=ROOT,
    ).stdout
    got = json.loads(out.strip().splitlines()[-1])
    for name in cases:
        expected = json.loads((ROOT / "tests" / "golden" / name.replace(".yaml", ".json")).read_text())
        assert got[name] == expected, name
