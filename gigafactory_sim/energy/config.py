"""The scenario's ``energy:`` section: a hard power cap, budgets, and the policies that keep them.

Registry: every policy, cap and budget variant is a config class with ``kind``; the unions below are the only
place they are listed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.energy.budgets import BudgetConfig
from gigafactory_sim.energy.deferral import DeferralConfig
from gigafactory_sim.energy.policies import AdmissionConfig, CappingConfig, PreemptionConfig
from gigafactory_sim.grid.signals import Signal, load_signal
from gigafactory_sim.workload.traces import resolve_data_path

__all__ = ["CapConfig", "CapWindow", "DailyCap", "EnergyConfig", "PolicyConfig", "SeriesCap", "cap_signal"]


class SeriesCap(StrictModel):
    """``kind: series``: the cap from a CSV (``time_utc``, ``power_cap_mw``), validated like grid series."""

    kind: Literal["series"] = "series"
    path: str
    zone: str | None = None
    column: str | None = None
    loop_year: bool = False


class CapWindow(StrictModel):
    """From ``from_h`` to ``to_h`` (local hours, may wrap midnight) the cap is ``mw``."""

    from_h: float = Field(ge=0, le=24)
    to_h: float = Field(ge=0, le=24)
    mw: float = Field(gt=0)


class DailyCap(StrictModel):
    """``kind: daily``: ``base_mw``, lowered (or raised) in daily windows, e.g. at the grid's evening peak.

    Windows are laid per local calendar day (a window wrapping midnight covers both ends of the same day);
    overlapping windows take the lower value; ``weekdays_only`` leaves Saturdays and Sundays at ``base_mw``.
    """

    kind: Literal["daily"] = "daily"
    base_mw: float = Field(gt=0)
    windows: list[CapWindow] = Field(min_length=1)
    utc_offset_h: float = Field(default=0.0, ge=-12, le=14, description="local time = UTC + offset")
    weekdays_only: bool = False


CapConfig = Annotated[float, Field(gt=0)] | Annotated[SeriesCap | DailyCap, Field(discriminator="kind")]
PolicyConfig = Annotated[
    AdmissionConfig | CappingConfig | PreemptionConfig | DeferralConfig, Field(discriminator="kind")
]


class EnergyConfig(StrictModel):
    """Hard limits and the policies that keep them."""

    power_cap_mw: CapConfig | None = Field(
        default=None, description="hard limit on facility grid draw, MW: a number, {kind: daily} or {kind: series}"
    )
    budgets: list[BudgetConfig] = Field(default_factory=list)
    policies: list[PolicyConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> EnergyConfig:
        kinds = [p.kind for p in self.policies]
        dupes = sorted({k for k in kinds if kinds.count(k) > 1})
        if dupes:
            raise ValueError(f"each policy kind at most once; repeated: {', '.join(dupes)}")
        limited = self.power_cap_mw is not None or bool(self.budgets)
        if limited and not {"admission", "capping", "preemption"} & set(kinds):
            raise ValueError(
                "a power cap or budget needs at least one of the admission, capping or preemption policies to keep it"
            )
        if "preemption" in kinds and "admission" not in kinds:
            raise ValueError("preemption needs admission (or suspended jobs would restart at once)")
        adm = next((p for p in self.policies if isinstance(p, AdmissionConfig)), None)
        cap = next((p for p in self.policies if isinstance(p, CappingConfig)), None)
        if (
            adm is not None
            and adm.limit_fraction < 1.0
            and (cap is None or cap.min_limit_fraction > adm.limit_fraction)
        ):
            raise ValueError("admission.limit_fraction below 1 needs capping with min_limit_fraction at or below it")
        return self

    def policy(self, kind: str) -> object | None:
        return next((p for p in self.policies if p.kind == kind), None)


def _daily_signal(cfg: DailyCap, start: datetime, horizon_s: float) -> Signal:
    """Breakpoints at every window edge of every local day overlapping the horizon."""
    offset_s = cfg.utc_offset_h * 3600.0
    local0 = pd.Timestamp(start) + pd.Timedelta(seconds=offset_s)
    day0 = local0.normalize()
    lead = (local0 - day0).total_seconds()  # seconds from local midnight to the scenario start
    times: list[float] = []
    values: list[float] = []
    n_days = int(np.ceil((horizon_s + lead) / 86400.0)) + 1
    for d in range(-1, n_days):
        midnight = d * 86400.0 - lead
        weekday = (day0 + pd.Timedelta(days=d)).weekday()
        active = not (cfg.weekdays_only and weekday >= 5)
        level = [cfg.base_mw] * 24 * 60  # per local minute
        if active:
            for w in cfg.windows:
                a, b = round(w.from_h * 60), round(w.to_h * 60)
                span = range(a, b) if a <= b else [*range(a, 1440), *range(0, b)]
                for m in span:
                    level[m] = w.mw if level[m] == cfg.base_mw else min(level[m], w.mw)
        for m in range(1440):
            if not values or level[m] != values[-1]:
                times.append(midnight + m * 60.0)
                values.append(level[m])
    t = np.array(times)
    v = np.array(values) * 1e6
    keep = t <= 0.0
    first = int(np.flatnonzero(keep)[-1]) if keep.any() else 0
    return Signal("power_cap", "W", t[first:], v[first:])


def cap_signal(cfg: float | SeriesCap | DailyCap, start: datetime, horizon_s: float, base_dir: Path) -> Signal:
    """The hard cap on grid draw as a signal in W."""
    if isinstance(cfg, int | float):
        return Signal.constant("power_cap", "W", float(cfg) * 1e6)
    if isinstance(cfg, DailyCap):
        return _daily_signal(cfg, start, horizon_s)
    sig = load_signal(
        "power_cap",
        resolve_data_path(cfg.path, base_dir),
        zone=cfg.zone,
        column=cfg.column,
        year=None,
        start=start,
        horizon_s=horizon_s,
        loop_year=cfg.loop_year,
        field="energy.power_cap_mw",
    )
    return Signal("power_cap", "W", sig.times_s, sig.values * 1e6)
