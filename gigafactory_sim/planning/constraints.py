"""Constraints of a plan: ``metric op value`` over a trial's replications, and the metrics they read.

A constraint is one line, ``wait_s.p95 <= 4h``, ``inference.services.chat-70b.slo.met == true`` or
``jobs.queued_at_end / jobs.submitted <= 0.05``: a flattened summary metric (or the ratio of two), one of
``<= < >= > ==``, and a number, a duration (``30m``, ``4h``: seconds), a percentage (``5%``) or ``true``/``false``.
Booleans count as 1 and 0. When the run has steady-state statistics (``statistics.warmup``), a metric that has a
steady-state figure (``statistics.steady.<metric>``) reads that figure.

A constraint holds on the mean over replications or, with a confidence level, on its one-sided Student-t bound
(``mean + t(level, n-1)·s/√n`` for an upper limit, ``mean − ...`` for a lower one); with one replication the
bound is the value itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gigafactory_sim.analysis.metrics import EXCLUDED_SECTIONS
from gigafactory_sim.analysis.stats import student_t_quantile
from gigafactory_sim.units import parse_duration_s

__all__ = ["Constraint", "ConstraintResult", "flat_metrics", "parse_constraint", "resolve"]

_OPS = ("<=", ">=", "==", "<", ">")
_PATTERN = re.compile(r"^\s*(?P<lhs>[^<>=]+?)\s*(?P<op><=|>=|==|<|>)\s*(?P<rhs>.+?)\s*$")
STEADY = "statistics.steady."


def flat_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """Every number and boolean of a summary by dotted key (booleans as 1.0/0.0, None as NaN; ``performance``
    left out): what constraints and objectives read."""
    out: dict[str, float] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if not prefix and key in EXCLUDED_SECTIONS:
                continue
            dotted = f"{prefix}{key}"
            if isinstance(value, Mapping):
                walk(value, dotted + ".")
            elif value is None:
                out[dotted] = math.nan
            elif isinstance(value, bool | int | float):
                out[dotted] = float(value)

    walk(summary, "")
    return out


def resolve(metric: str, flat: Mapping[str, float]) -> float | None:
    """The value of ``metric`` in ``flat``: its steady-state figure when there is one, else the whole run's."""
    if STEADY + metric in flat:
        return flat[STEADY + metric]
    return flat.get(metric)


def _value(text: str) -> float:
    low = text.strip().lower()
    if low in {"true", "yes"}:
        return 1.0
    if low in {"false", "no"}:
        return 0.0
    if low.endswith("%"):
        return float(low[:-1]) / 100.0
    try:
        return float(low.replace("_", ""))
    except ValueError:
        pass
    try:
        return parse_duration_s(text.strip())
    except (ValueError, TypeError):
        raise ValueError(f"{text!r} is not a number, a duration (4h), a percentage (5%) or true/false") from None


@dataclass(frozen=True)
class Constraint:
    """``metrics[0] [/ metrics[1]] op limit``."""

    text: str
    metrics: tuple[str, ...]
    op: str
    limit: float

    def value(self, flat: Mapping[str, float]) -> float:
        """The left-hand side in one replication (NaN when a metric is missing or the ratio's divisor is 0)."""
        values = [resolve(m, flat) for m in self.metrics]
        if any(v is None for v in values):
            return math.nan
        num = float(values[0])  # type: ignore[arg-type]
        if len(values) == 1:
            return num
        den = float(values[1])  # type: ignore[arg-type]
        return num / den if den else (0.0 if num == 0 else math.inf)

    def evaluate(self, flats: Sequence[Mapping[str, float]], confidence: float | None = None) -> ConstraintResult:
        """The constraint over replications ``flats``."""
        xs = [self.value(f) for f in flats]
        finite = [x for x in xs if not math.isnan(x)]
        if not finite:
            return ConstraintResult(self, math.nan, math.nan, False, math.inf)
        n = len(finite)
        mean = sum(finite) / n
        held = mean
        if confidence is not None and n > 1 and self.op != "==":
            sd = math.sqrt(sum((x - mean) ** 2 for x in finite) / (n - 1))
            half = student_t_quantile(confidence, n - 1) * sd / math.sqrt(n)
            held = mean + half if self.op in ("<=", "<") else mean - half
        scale = abs(self.limit) if self.limit else 1.0
        if self.op == "==":
            violation = abs(held - self.limit) / scale
            ok = violation <= 1e-12
        elif self.op in ("<=", "<"):
            violation = (held - self.limit) / scale
            ok = held <= self.limit if self.op == "<=" else held < self.limit
        else:
            violation = (self.limit - held) / scale
            ok = held >= self.limit if self.op == ">=" else held > self.limit
        if len(finite) < len(xs):  # a replication without the metric cannot show the constraint holds
            ok = False
        if not ok:
            violation = max(violation, 1e-9)
        return ConstraintResult(self, mean, held, ok, violation)


@dataclass(frozen=True)
class ConstraintResult:
    """A constraint in one trial: the mean, the value held against the limit (the bound), whether it holds and
    the violation (relative to the limit; <= 0 when it holds: what the sampler reads)."""

    constraint: Constraint
    mean: float
    held: float
    ok: bool
    violation: float

    @property
    def slack(self) -> float:
        """How far from the limit, relative to it (0: tight; negative: violated)."""
        return -self.violation if self.constraint.op != "==" else (0.0 if self.ok else -self.violation)


def parse_constraint(text: str) -> Constraint:
    """``"wait_s.p95 <= 4h"`` -> a :class:`Constraint`; raises ValueError with a readable message."""
    if not isinstance(text, str):
        raise ValueError("a constraint is a string: 'metric <= value'")
    m = _PATTERN.match(text)
    if m is None:
        raise ValueError(f"{text!r}: expected 'metric OP value' with OP one of {', '.join(_OPS)}")
    metrics = tuple(part.strip() for part in m["lhs"].split("/"))
    if len(metrics) > 2 or any(not re.fullmatch(r"[A-Za-z0-9_.>+-]+", x) for x in metrics):
        raise ValueError(f"{text!r}: the left side is a metric or the ratio of two (a.b / c.d)")
    return Constraint(text.strip(), metrics, m["op"], _value(m["rhs"]))
