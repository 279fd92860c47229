"""Summary metrics as flat ``dotted.key -> number`` maps, and which of them two runs can be compared on.

``summary.json`` is nested (``{"energy": {"it_mwh": ...}}``); comparisons and sweep aggregates work on the
flat form (``energy.it_mwh``). The ``performance`` section (wall-clock times) is left out: it is not a result
of the scenario and differs between identical runs. Non-numeric entries (the scenario name) and the ``seed``
are left out too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "EXCLUDED_SECTIONS",
    "HORIZON",
    "SIZE",
    "flatten_summary",
    "scales_with",
]

EXCLUDED_SECTIONS = frozenset({"performance"})
_EXCLUDED_KEYS = frozenset({"seed", "scenario"})

HORIZON = "horizon"
"""A metric that grows with the simulated time (a total: energy, GPU-hours, job counts, carbon, cost)."""
SIZE = "size"
"""A metric that grows with the facility (power in MW, totals, mean numbers of jobs)."""

# Ratios, fractions, percentiles and intensities do not grow with the horizon or the facility.
_INTENSIVE = re.compile(r"(^|\.|_)(fraction|share|pue|ratio|factor|pct|percent|intensity|per)(_|\.|$)|(^|\.)wait_s\.")
_DESCRIPTORS = frozenset({"gpus_total", "horizon_s"})
_POWER_SUFFIXES = ("_mw", "_kw", "_w")
_SITE_INTENSIVE = frozenset({"gpus", "assurance", "mean_wait_h"})


def flatten_summary(summary: Mapping[str, Any]) -> dict[str, float]:
    """Numeric leaves of ``summary`` under dotted keys, in the summary's order (``performance`` excluded).

    ``None`` (e.g. a wait percentile with no started job) becomes NaN; booleans and strings are dropped.
    """
    out: dict[str, float] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if not prefix and (key in EXCLUDED_SECTIONS or key in _EXCLUDED_KEYS):
                continue
            if isinstance(value, Mapping):
                walk(value, dotted + ".")
            elif value is None:
                out[dotted] = math.nan
            elif isinstance(value, int | float) and not isinstance(value, bool):
                out[dotted] = float(value)

    walk(summary, "")
    return out


def scales_with(metric: str) -> frozenset[str]:
    """What a flattened metric grows with: a subset of {:data:`HORIZON`, :data:`SIZE`}.

    Descriptors (``gpus_total``, ``horizon_s``, a cluster's or a federation site's ``gpus``) and intensive
    quantities (fractions, PUE, wait-time percentiles and means, intensities) return the empty set: they
    compare directly. Powers scale with the facility; totals (energy, GPU-hours, counts, carbon mass, cost)
    with both. An unknown metric is assumed to be a total, so a comparison says "not comparable" rather than
    divide silently.
    """
    leaf = metric.rsplit(".", 1)[-1]
    if metric in _DESCRIPTORS or (metric.startswith("clusters.") and leaf == "gpus"):
        return frozenset()
    if metric.startswith("sites.") and leaf in _SITE_INTENSIVE:  # a federation's site: its size, its mean wait
        return frozenset()
    if _INTENSIVE.search(metric):
        return frozenset()
    if metric == "power.peak_at_s":
        return frozenset({HORIZON})
    if metric.startswith("jobs.mean_") or leaf.endswith(_POWER_SUFFIXES) or "_mw_" in leaf:
        return frozenset({SIZE})
    return frozenset({HORIZON, SIZE})  # energy, GPU-hours, job counts, carbon, cost, and anything unknown
