"""Demand profiles of an inference service (tagged union on ``kind``): constant, diurnal/weekly, trace replay.

Every profile answers two questions: the expected number of requests in ``[t0, t1)`` (the fluid model) and the
arrival times of individual requests (the discrete model). Times are seconds from the scenario start.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, PrivateAttr

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.workload.arrivals import DiurnalArrivals, poisson_times

__all__ = ["ConstantDemand", "DemandProfile", "DiurnalDemand", "TraceDemand"]


class ConstantDemand(StrictModel):
    """Poisson requests at a constant ``rate_per_s``."""

    kind: Literal["constant"] = "constant"
    rate_per_s: float = Field(gt=0)

    def expected_requests(self, t0_s: float, t1_s: float, start: datetime) -> float:
        return self.rate_per_s * (t1_s - t0_s)

    def arrival_times_s(self, rng: np.random.Generator, horizon_s: float, start: datetime) -> np.ndarray:
        return poisson_times(rng, self.rate_per_s, horizon_s)


class DiurnalDemand(StrictModel):
    """Poisson requests whose rate follows the day and week: the training arrivals' cosine shape
    (:class:`~gigafactory_sim.workload.arrivals.DiurnalArrivals`), with ``mean_rate_per_s`` the weekday mean,
    ``peak_to_trough`` the ratio of highest to lowest rate, ``peak_hour`` local time, ``weekend_factor`` on
    Saturdays and Sundays, ``utc_offset_h`` the time zone."""

    kind: Literal["diurnal"] = "diurnal"
    mean_rate_per_s: float = Field(gt=0)
    peak_to_trough: float = Field(default=3.0, ge=1)
    peak_hour: float = Field(default=14.0, ge=0, lt=24)
    weekend_factor: float = Field(default=1.0, ge=0)
    utc_offset_h: float = Field(default=1.0, ge=-12, le=14)
    _shape_cache: DiurnalArrivals | None = PrivateAttr(default=None)

    def _shape(self) -> DiurnalArrivals:
        if self._shape_cache is None:
            self._shape_cache = self._build_shape()
        return self._shape_cache

    def _build_shape(self) -> DiurnalArrivals:
        return DiurnalArrivals(
            mean_rate_per_hour=self.mean_rate_per_s * 3600.0,
            peak_to_trough=self.peak_to_trough,
            peak_hour=self.peak_hour,
            weekend_factor=self.weekend_factor,
            utc_offset_h=self.utc_offset_h,
        )

    def rate_per_s(self, t_s: np.ndarray, start: datetime) -> np.ndarray:
        return self._shape().rate_per_s(np.asarray(t_s, dtype=float), start)

    def expected_requests(self, t0_s: float, t1_s: float, start: datetime) -> float:
        """Simpson's rule on the smooth rate (exact to ~1e-9 over a control interval)."""
        if t1_s <= t0_s:
            return 0.0
        r = self.rate_per_s(np.array([t0_s, 0.5 * (t0_s + t1_s), t1_s]), start)
        return float((r[0] + 4.0 * r[1] + r[2]) / 6.0 * (t1_s - t0_s))

    def arrival_times_s(self, rng: np.random.Generator, horizon_s: float, start: datetime) -> np.ndarray:
        return self._shape().times_s(rng, horizon_s, start)


class TraceDemand(StrictModel):
    """Replay of a request trace: ``format: azure`` (Azure LLM inference trace 2023: ``TIMESTAMP,
    ContextTokens, GeneratedTokens``) or ``generic`` (``arrival_s`` or ``arrival_time``, ``prompt_tokens``,
    ``output_tokens``, optionally ``hash_ids``) or ``mooncake`` (JSON lines ``timestamp`` ms, ``input_length``,
    ``output_length``, ``hash_ids``; Qin et al., FAST 2025). ``rate_scale`` multiplies the request rate (2 =
    twice as many requests per second); ``loop`` repeats the trace to cover the horizon.
    ``builtin:azure_llm_2023_conv_sample.csv.gz`` and ``builtin:azure_llm_2023_code_sample.csv.gz`` are
    shipped samples (CC BY 4.0, Patel et al., ISCA 2024);
    ``builtin:mooncake_conversation_sample.jsonl.gz`` carries block hashes (Apache-2.0, Qin et al., FAST 2025)."""

    kind: Literal["trace"] = "trace"
    path: str
    format: Literal["generic", "azure", "mooncake"] = "generic"
    rate_scale: float = Field(default=1.0, gt=0)
    loop: bool = True
    max_rows: int | None = Field(default=None, gt=0)


DemandProfile = Annotated[ConstantDemand | DiurnalDemand | TraceDemand, Field(discriminator="kind")]
