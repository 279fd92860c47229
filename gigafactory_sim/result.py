"""What a run returns: the summary, the tables, the scenario that produced them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gigafactory_sim.config.scenario import Scenario

__all__ = ["RunResult"]


@dataclass
class RunResult:
    """A finished run: ``summary`` (summary.json), ``timeseries`` and ``jobs`` (the Parquet tables)."""

    scenario: Scenario
    summary: dict[str, Any]
    timeseries: pd.DataFrame
    jobs: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
