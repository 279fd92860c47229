"""The scenario's ``statistics:`` section: which warm-up to cut before steady-state figures, and how to batch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.units import Duration

__all__ = ["StatisticsConfig"]


class StatisticsConfig(StrictModel):
    """Steady-state figures over the run after a warm-up (``summary["statistics"]``).

    ``warmup``: a duration (rounded to the report-interval grid, so every figure stays an exact interval mean) or
    ``auto``: the MSER-5 truncation rule on the allocated-GPU series. ``batches``: the number of non-overlapping
    batches of the steady span for batch-means confidence intervals.
    """

    warmup: Duration | Literal["auto"] = Field(
        default=0.0, description="warm-up cut before steady-state figures: a duration, or auto (MSER-5)"
    )
    batches: int = Field(
        default=20, ge=2, le=1000, description="non-overlapping batches of the steady span for batch-means CIs"
    )
