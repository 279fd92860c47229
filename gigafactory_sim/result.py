"""What a run returns: the summary, the tables, the scenario that produced them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gigafactory_sim.config.scenario import ScenarioBase

__all__ = ["RunResult"]


@dataclass
class RunResult:
    """A finished run: ``summary`` (summary.json), ``timeseries`` and ``jobs`` (the Parquet tables); a
    federation's run also has each site's own result in ``sites`` (by site name)."""

    scenario: ScenarioBase
    summary: dict[str, Any]
    timeseries: pd.DataFrame
    jobs: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    sites: dict[str, RunResult] = field(default_factory=dict)
