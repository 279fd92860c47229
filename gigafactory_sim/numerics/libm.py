"""Elementwise exp, log, cos, powers and dot products that give the same floats on every x86-64 machine.

numpy picks its kernels for the CPU it runs on. On a CPU with AVX-512 its float64 ``exp`` and ``log`` are its own
vectorised code, and ``log10``, ``expm1``, ``power`` and others are Intel's SVML; without AVX-512 they call the C
library one value at a time. The two disagree in the last bit for some inputs, and ``np.dot`` sums in the order of
the BLAS kernel chosen for the CPU. A run on one machine would then not reproduce a run on another.

The functions here take the C library's result for every element (through :mod:`math`, as the engine's scalar
code does), so a result depends on the inputs and the C library only: on a machine without AVX-512 they return
exactly what numpy returns there. Special values follow numpy: ``exp`` overflows to ``inf``, ``log`` of 0 is
``-inf`` and of a negative number ``nan``, ``power`` of a negative base to a fractional exponent ``nan``, ``cos`` of
an infinity ``nan``. Every transcendental function the simulation applies to arrays goes through this module
(``tests/test_libm.py`` checks the package for direct calls).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from itertools import repeat

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["cos", "dot", "exp", "expm1", "log", "log10", "logspace", "power"]


_EXP_MAX = 709.782712893384  # the largest x whose exp is finite, to the last digit (math.exp raises above it)


def _pow1(x: float, y: float) -> float:
    try:
        return math.pow(x, y)
    except OverflowError:
        return math.inf
    except ValueError:  # 0 to a negative power (inf), or a negative base to a fractional one (nan)
        return math.inf if x == 0.0 else math.nan


def _each(fn: Callable[..., float], a: np.ndarray, *more: Iterable[float]) -> np.ndarray:
    """``fn`` of every element (and of the same place in ``more``): a C function mapped over a list, no Python
    frame per element."""
    return np.fromiter(map(fn, a.ravel().tolist(), *more), dtype=float, count=a.size).reshape(a.shape)


def _overflowing(fn: Callable[[float], float], x: ArrayLike) -> np.ndarray:
    """``fn`` (exp or expm1) of every element, ``inf`` where it overflows."""
    a = np.asarray(x, dtype=float)
    big = a > _EXP_MAX
    if not big.any():
        return _each(fn, a)
    out = _each(fn, np.where(big, 0.0, a))
    out[big] = math.inf
    return out


def _logarithm(fn: Callable[[float], float], x: ArrayLike) -> np.ndarray:
    """``fn`` (log or log10) of every element: ``-inf`` at 0, ``nan`` below it or at ``nan``."""
    a = np.asarray(x, dtype=float)
    ok = a > 0.0
    if ok.all():
        return _each(fn, a)
    out = _each(fn, np.where(ok, a, 1.0))
    out[~ok] = np.where(a[~ok] == 0.0, -math.inf, math.nan)
    return out


def exp(x: ArrayLike) -> np.ndarray:
    """``e ** x`` for every element."""
    return _overflowing(math.exp, x)


def expm1(x: ArrayLike) -> np.ndarray:
    """``e ** x - 1`` for every element, accurate near 0."""
    return _overflowing(math.expm1, x)


def log(x: ArrayLike) -> np.ndarray:
    """Natural logarithm of every element."""
    return _logarithm(math.log, x)


def log10(x: ArrayLike) -> np.ndarray:
    """Base-10 logarithm of every element."""
    return _logarithm(math.log10, x)


def cos(x: ArrayLike) -> np.ndarray:
    """Cosine of every element (radians); ``nan`` at an infinity."""
    a = np.asarray(x, dtype=float)
    finite = np.isfinite(a)
    if finite.all():
        return _each(math.cos, a)
    out = _each(math.cos, np.where(finite, a, 0.0))
    out[~finite] = math.nan
    return out


def power(x: ArrayLike, y: float) -> np.ndarray:
    """Every element of ``x`` to the power ``y``."""
    a, y = np.asarray(x, dtype=float), float(y)
    try:
        return _each(math.pow, a, repeat(y))
    except (OverflowError, ValueError):  # (an overflow, a zero to a negative power, a negative base)
        return _each(lambda v: _pow1(v, y), a)


def logspace(start: float, stop: float, num: int) -> np.ndarray:
    """``10 ** np.linspace(start, stop, num)``, as ``np.logspace`` (base 10)."""
    exponents = np.linspace(start, stop, num)
    try:
        return _each(math.pow, np.full(num, 10.0), exponents.tolist())
    except OverflowError:
        return _each(lambda v: _pow1(10.0, v), exponents)


def dot(a: ArrayLike, b: ArrayLike) -> float:
    """The sum of the products of two vectors, correctly rounded (``math.fsum``): the same float whatever the order
    of the terms or the machine."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"dot of shapes {x.shape} and {y.shape}")
    return math.fsum((x * y).tolist())
