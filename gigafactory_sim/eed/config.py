"""The scenario's ``heat_reuse:`` and ``eed:`` sections, and the renewable contracts (``grid.renewables.ppa``).

Registry: each heat-demand kind is one config class with ``kind``; :data:`HeatDemand` lists them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from gigafactory_sim.config.base import StrictModel

__all__ = [
    "ConstantHeatDemand",
    "EedIdentity",
    "HeatDemand",
    "HeatReuseConfig",
    "PpaConfig",
    "SeasonalHeatDemand",
    "SeriesHeatDemand",
]


class ConstantHeatDemand(StrictModel):
    """``kind: constant``: the heat network takes ``mw`` (MW heat) at every hour."""

    kind: Literal["constant"] = "constant"
    mw: float = Field(ge=0.0)

    def demand_w(self, temperature_c: float | None) -> float:
        return self.mw * 1e6


class SeasonalHeatDemand(StrictModel):
    """``kind: seasonal``: space heating by degree-hours, ``peak_mw x max(base_c - T, 0) / (base_c -
    design_c)`` (capped at ``peak_mw``), plus ``hot_water_mw`` all year. Base 15.5 degC: the heating threshold of
    Eurostat's heating degree days (15 degC threshold, 18 degC reference); design -10 degC: a Central-European
    design outdoor temperature (EN 12831 tables give -5 to -16 degC)."""

    kind: Literal["seasonal"] = "seasonal"
    peak_mw: float = Field(ge=0.0, description="space-heating demand at the design temperature, MW heat")
    base_c: float = Field(default=15.5, description="no space heating at or above this outdoor temperature")
    design_c: float = Field(default=-10.0, description="outdoor temperature of the peak demand")
    hot_water_mw: float = Field(default=0.0, ge=0.0, description="all-year demand (domestic hot water), MW heat")
    temperature_c: float | None = Field(
        default=None, description="constant outdoor temperature when grid.temperature is absent, degC"
    )

    @model_validator(mode="after")
    def _design_below_base(self) -> SeasonalHeatDemand:
        if self.design_c >= self.base_c:
            raise ValueError(f"design_c ({self.design_c:g}) must be below base_c ({self.base_c:g})")
        return self

    def demand_w(self, temperature_c: float | None) -> float:
        t = self.temperature_c if temperature_c is None else temperature_c
        if t is None:
            raise ValueError("seasonal heat demand needs grid.temperature or temperature_c")
        share = min(max(self.base_c - t, 0.0) / (self.base_c - self.design_c), 1.0)
        return (self.peak_mw * share + self.hot_water_mw) * 1e6


class SeriesHeatDemand(StrictModel):
    """``kind: series``: hourly demand from a CSV (``time_utc``, ``zone``, ``heat_demand_mw``), validated like
    grid series (no gaps, no duplicates, covers the horizon unless ``loop_year``)."""

    kind: Literal["series"] = "series"
    path: str
    zone: str | None = None
    column: str | None = None
    loop_year: bool = False


HeatDemand = Annotated[ConstantHeatDemand | SeasonalHeatDemand | SeriesHeatDemand, Field(discriminator="kind")]


class HeatReuseConfig(StrictModel):
    """Waste heat delivered to a heat network: per segment ``min(recoverable_share x IT power, demand,
    capacity_mw)``. Liquid-cooled racks give 60-80 % of their heat to the water loop (warm-water loops at
    40-60 degC, which a heat pump lifts to district-heating temperature)."""

    capacity_mw: float = Field(ge=0.0, description="heat-recovery capacity (exchangers, heat pumps), MW heat")
    recoverable_share: float = Field(default=0.7, ge=0.0, le=1.0, description="share of IT heat that can be recovered")
    supply_temperature_c: float = Field(default=60.0, ge=0.0, le=150.0, description="delivered heat, degC")
    demand: HeatDemand


class PpaConfig(StrictModel):
    """A power-purchase agreement: ``mw`` contracted, delivered with the solar or wind capacity-factor profile
    of ``grid.renewables`` (the same series as on-site plants), or flat (``baseload``)."""

    name: str = Field(default="ppa", min_length=1)
    mw: float = Field(ge=0.0, description="contracted capacity, MW (the profile's peak; baseload: constant)")
    profile: Literal["solar", "wind", "baseload"]


class EedIdentity(StrictModel):
    """``eed:``: identity fields of the report (all optional)."""

    name: str | None = Field(default=None, description="data-centre name; default the facility's")
    operator: str | None = None
    floor_area_m2: float | None = Field(default=None, ge=0.0, description="total floor area, m2")
    computer_room_area_m2: float | None = Field(default=None, ge=0.0, description="computer-room floor area, m2")
    guarantees_of_origin_mwh: float = Field(
        default=0.0, ge=0.0, description="guarantees of origin cancelled per calendar year, MWh"
    )
