"""Numbers for a reader: the unit of a summary figure read from its key, and a sensible precision.

A summary key carries its unit in its name (``energy.it_mwh``, ``wait_s.p95``, ``tokens.output_per_s``,
``carbon.by_class_t.training``): :func:`unit_of` finds it (the last unit-bearing part of the dotted key wins, and
within a part the unit that ends last, so ``output_per_s`` is a rate and not a duration), and
:func:`format_value` writes the value in it. Durations are shown in the largest unit that reads well (``32 ms``,
``4.4 min``, ``2.5 d``), fractions as percentages, large numbers with thousands separators and no more than
three or four significant figures.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "MISSING",
    "format_quantity",
    "format_value",
    "human_duration",
    "humanise",
    "sig",
    "unit_of",
]

MISSING = "—"

# (regex alternative, unit id), longest first so that ``gpu_h`` wins over ``h`` and ``eur_per_mwh`` over ``mwh``.
_UNIT_TOKENS: tuple[tuple[str, str], ...] = (
    ("kwh_per_1000_output_tokens", "kWh per 1,000 output tokens"),
    ("j_per_output_token", "J/output token"),
    ("wh_per_request", "Wh/request"),
    ("eur_per_gpu_h", "EUR/GPU-h"),
    ("eur_per_mwh", "EUR/MWh"),
    ("g_per_kwh", "g CO2/kWh"),
    ("output_tokens_per_s", "output tokens/s"),
    ("tokens_per_s", "tokens/s"),
    ("per_s", "/s"),
    ("rps", "requests/s"),
    ("replica_h", "replica-h"),
    ("node_h", "node-h"),
    ("gpu_h", "GPU-h"),
    ("fraction", "%"),
    ("share", "%"),
    ("mwh", "MWh"),
    ("kwh", "kWh"),
    ("wh", "Wh"),
    ("mw", "MW"),
    ("kw", "kW"),
    ("w", "W"),
    ("eur", "EUR"),
    ("t", "t CO2"),
    ("h", "h"),
    ("ms", "ms"),
    ("s", "s"),
)
_UNIT_RE = re.compile(r"(?:^|_)(" + "|".join(tok for tok, _ in _UNIT_TOKENS) + r")(?=_|$)")
_UNIT_NAMES = dict(_UNIT_TOKENS)
_DURATIONS = {"s": 1.0, "ms": 0.001, "h": 3600.0}
_PERCENT_LEAVES = frozenset({"utilisation", "attainment", "availability"})
_TIMESTAMP = re.compile(r"(^|_)at_s$")


def sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant figures, but never fewer than its integer digits; thousands separators.

    ``sig(1771347.3)`` -> ``'1,771,347'``, ``sig(0.073581)`` -> ``'0.0736'``, ``sig(42.0)`` -> ``'42'``.
    """
    if isinstance(x, bool) or not isinstance(x, int | float | np.integer | np.floating):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("∞" if x > 0 else "-∞")
    if x == 0:
        return "0"
    ax = abs(x)
    if ax < 1e-6:
        return f"{x:.{digits - 1}e}"
    decimals = max(digits - 1 - math.floor(math.log10(ax)), 0)
    text = f"{x:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def human_duration(seconds: float) -> str:
    """``0.032`` -> ``'32 ms'``, ``90`` -> ``'90 s'``, ``265`` -> ``'4.42 min'``, ``86400`` -> ``'24 h'``,
    ``604800`` -> ``'7 d'``: the largest unit with at least two of it (milliseconds below one second)."""
    if not math.isfinite(seconds):
        return sig(seconds)
    ax = abs(seconds)
    if ax == 0:
        return "0 s"
    for threshold_s, unit_s, unit in (
        (2 * 86400.0, 86400.0, "d"),
        (2 * 3600.0, 3600.0, "h"),
        (120.0, 60.0, "min"),
        (1.0, 1.0, "s"),
    ):
        if ax >= threshold_s:
            return f"{sig(seconds / unit_s)} {unit}"
    return f"{sig(seconds * 1000.0)} ms"


def unit_of(key: str) -> str | None:
    """The unit token a dotted summary key carries (``'mwh'``, ``'s'``, ``'fraction'``, ...), or None."""
    parts = key.split(".")
    leaf = parts[-1]
    if leaf in _PERCENT_LEAVES:
        return "fraction"
    for part in reversed(parts):
        best: tuple[int, int, str] | None = None
        for m in _UNIT_RE.finditer(part.lower()):
            cand = (m.end(1), len(m.group(1)), m.group(1))
            if best is None or cand > best:
                best = cand
        if best is not None:
            return best[2]
    return None


def format_quantity(x: float, unit: str | None) -> str:
    """A number in ``unit`` (a token of :func:`unit_of`): durations humanised, fractions as %, else
    ``value unit``."""
    if unit in ("fraction", "share"):
        pct = 100.0 * x
        return f"{pct:.1f} %" if pct == 0 or abs(pct) >= 1 else f"{sig(pct, 2)} %"
    if unit in _DURATIONS:
        return human_duration(x * _DURATIONS[unit])
    if unit == "eur":
        return f"{sig(x)} EUR"
    if unit is None:
        return sig(x, 4) if abs(x) < 10 else sig(x)
    return f"{sig(x)} {_UNIT_NAMES.get(unit, unit)}"


def format_value(value: Any, key: str = "") -> str:
    """One summary value as a reader sees it; the dotted ``key`` gives the unit (see :func:`unit_of`).

    ``None`` -> an em dash, booleans -> yes / no, integers with separators (counts), lists joined by commas.
    A key ending in ``_at_s`` is a moment, shown as the time since the start.
    """
    if value is None:
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v, key) for v in value) if value else MISSING
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {format_value(v, f'{key}.{k}')}" for k, v in value.items()) or MISSING
    if not isinstance(value, int | float | np.integer | np.floating):
        return str(value)
    unit = unit_of(key)
    if _TIMESTAMP.search(key.rsplit(".", 1)[-1]):
        return f"{human_duration(float(value))} after the start"
    if isinstance(value, int | np.integer) and unit is None:
        return f"{int(value):,}"
    x = float(value)
    if not math.isfinite(x):
        return sig(x)
    return format_quantity(x, unit)


_WORDS = {
    "it": "IT",
    "gpu": "GPU",
    "gpus": "GPUs",
    "pue": "PUE",
    "ttft": "TTFT",
    "tpot": "TPOT",
    "e2e": "e2e",
    "slo": "SLO",
    "ettr": "ETTR",
    "mtbf": "MTBF",
    "hbm": "HBM",
    "co2": "CO2",
    "eur": "EUR",
    "rps": "req/s",
}


def humanise(key: str) -> str:
    """A readable name for a summary key: ``'energy_over_hard_cap_mwh'`` -> ``'Energy over hard cap'``
    (the unit goes with the value), ``'node_failures_by_cause.gpu'`` -> ``'Node failures by cause: GPU'``."""
    parts = key.split(".")
    words: list[str] = []
    for part in parts:
        unit = unit_of(part)
        text = part
        if unit and unit not in ("fraction", "share") and text.lower().endswith(f"_{unit}"):
            text = text[: -len(unit) - 1]
        if unit in ("fraction", "share") and text.endswith(f"_{unit}"):
            text = text[: -len(unit) - 1] + " share"
        words.append(" ".join(_WORDS.get(w.lower(), w) for w in text.split("_") if w))
    text = ": ".join(w for w in words if w)
    return text[:1].upper() + text[1:] if text else key
