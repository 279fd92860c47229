"""The scenario's ``cooling:`` section: how the site rejects heat, what water that takes, and the PUE it implies.

Registry: each cooling kind is one config class with ``kind``; :data:`CoolingConfig` is the only place they are
listed. A kind gives two curves against the outdoor temperature ``T`` (degC):

- :meth:`water_l_per_kwh` -- site water drawn per kWh of heat rejected (evaporation + blowdown), so WUE follows
  the weather like the temperature PUE does (times :meth:`humidity_factor` when a humidity series is given);
- :meth:`pue_model` -- the :class:`~gigafactory_sim.energy.pue.TemperaturePue` the kind implies (used unless the
  scenario gives ``facility.pue``).

Physics of evaporative rejection: evaporating 1 kg of water takes ~2.45 MJ at 20-30 degC, so rejecting 1 kWh
(3.6 MJ) entirely as latent heat evaporates ~1.47 L; a tower rejects only part of its load latently (less in
cold air, where sensible exchange does more), and blowdown adds ``evaporation / (cycles - 1)`` at ``cycles`` of
concentration. Published annual WUE (The Green Grid's metric, ISO/IEC 30134-9): dry coolers 0-0.1 L/kWh,
adiabatic assist 0.1-0.4, evaporative towers 0.4-2.0 (industry average ~1.8, Shehabi et al., US Data Center
Energy Usage Report, LBNL 2016).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.energy.pue import TemperaturePue

__all__ = [
    "LATENT_L_PER_KWH",
    "ChilledWater",
    "ClosedLoopLiquid",
    "CoolingConfig",
    "DryAdiabatic",
    "Evaporative",
]

LATENT_L_PER_KWH = 3.6 / 2.45
"""Water evaporated per kWh of heat rejected as latent heat (3.6 MJ / 2.45 MJ/kg), L/kWh."""


class _Cooling(StrictModel):
    """What every cooling kind has: a constant outdoor temperature for sites without a temperature series, and
    how evaporation responds to humidity (used when ``grid.humidity`` gives a series): drier air than
    ``reference_humidity`` evaporates more per kWh, ``x (1 + dry_air_gain x (reference - RH))``."""

    temperature_c: float | None = Field(
        default=None, description="constant outdoor temperature when grid.temperature is absent, degC"
    )
    reference_humidity: float = Field(
        default=0.75, ge=0.0, le=1.0, description="relative humidity the curve is for (Paris/Frankfurt annual ~0.75)"
    )
    dry_air_gain: float = Field(default=0.5, ge=0.0, le=5.0, description="water change per unit of humidity below it")

    # each kind gives its own PUE curve's defaults
    pue_base: float
    pue_threshold_c: float
    pue_per_degree_c: float

    def pue_model(self) -> TemperaturePue:
        """The kind's PUE curve (used unless the facility gives a ``pue``)."""
        return TemperaturePue(
            base=self.pue_base,
            per_degree_c=self.pue_per_degree_c,
            threshold_c=self.pue_threshold_c,
            temperature_c=self.temperature_c,
        )

    def humidity_factor(self, relative_humidity: float | None) -> float:
        """Scale of the water curve at ``relative_humidity`` (1 without a humidity series)."""
        if relative_humidity is None:
            return 1.0
        return max(1.0 + self.dry_air_gain * (self.reference_humidity - relative_humidity), 0.0)


class ClosedLoopLiquid(_Cooling):
    """``kind: closed_loop_liquid``: direct liquid cooling in a closed loop rejected by dry coolers: no water
    (WUE 0). Warm-water loops free-cool up to ~25 degC outdoors, then dry coolers lose their approach and the
    fans and trim chillers raise PUE (REFERENCES.md, Facilities: new liquid-cooled AI halls target 1.1-1.2)."""

    kind: Literal["closed_loop_liquid"] = "closed_loop_liquid"
    pue_base: float = Field(default=1.10, ge=1.0, le=3.0)
    pue_threshold_c: float = 25.0
    pue_per_degree_c: float = Field(default=0.012, ge=0.0)

    def water_l_per_kwh(self, temperature_c: float) -> float:
        return 0.0


class DryAdiabatic(_Cooling):
    """``kind: dry_adiabatic``: dry coolers with adiabatic (spray) assist above ``threshold_c``: water grows
    linearly to ``max_l_per_kwh`` at ``full_c``; dry below (annual WUE 0.1-0.4 L/kWh in temperate climates)."""

    kind: Literal["dry_adiabatic"] = "dry_adiabatic"
    threshold_c: float = Field(default=22.0, description="adiabatic assist starts above this temperature")
    full_c: float = Field(default=32.0, description="full spray at and above this temperature")
    max_l_per_kwh: float = Field(default=1.2, ge=0.0, le=5.0, description="water at full spray, L/kWh heat")
    pue_base: float = Field(default=1.12, ge=1.0, le=3.0)
    pue_threshold_c: float = 22.0
    pue_per_degree_c: float = Field(default=0.006, ge=0.0)

    def water_l_per_kwh(self, temperature_c: float) -> float:
        span = max(self.full_c - self.threshold_c, 1e-9)
        return self.max_l_per_kwh * min(max((temperature_c - self.threshold_c) / span, 0.0), 1.0)


class Evaporative(_Cooling):
    """``kind: evaporative``: open cooling towers. The latent share of the heat rejected rises linearly from
    ``latent_share_cold`` at ``cold_c`` to ``latent_share_warm`` at ``warm_c``; water = latent share x 1.47 L/kWh
    x (1 + 1 / (cycles - 1)) for blowdown. Towers keep PUE low into warm weather."""

    kind: Literal["evaporative"] = "evaporative"
    latent_share_cold: float = Field(default=0.35, ge=0.0, le=1.0)
    latent_share_warm: float = Field(default=0.90, ge=0.0, le=1.0)
    cold_c: float = 0.0
    warm_c: float = 25.0
    cycles_of_concentration: float = Field(default=5.0, gt=1.0, le=50.0)
    pue_base: float = Field(default=1.12, ge=1.0, le=3.0)
    pue_threshold_c: float = 24.0
    pue_per_degree_c: float = Field(default=0.005, ge=0.0)

    def latent_share(self, temperature_c: float) -> float:
        span = max(self.warm_c - self.cold_c, 1e-9)
        x = min(max((temperature_c - self.cold_c) / span, 0.0), 1.0)
        return self.latent_share_cold + x * (self.latent_share_warm - self.latent_share_cold)

    def water_l_per_kwh(self, temperature_c: float) -> float:
        evaporated = self.latent_share(temperature_c) * LATENT_L_PER_KWH
        return evaporated * (1.0 + 1.0 / (self.cycles_of_concentration - 1.0))


class ChilledWater(Evaporative):
    """``kind: chilled_water``: mechanical chillers (coefficient of performance ``cop``) with cooling towers:
    the towers reject the IT heat plus the compressors' ``1 / cop``; a water-side economiser free-cools below
    ``pue_threshold_c``. PUE around the industry average (1.56-1.58, Uptime Institute 2023-2024) in summer."""

    kind: Literal["chilled_water"] = "chilled_water"  # type: ignore[assignment]
    cop: float = Field(default=5.0, gt=0.0, le=20.0)
    pue_base: float = Field(default=1.25, ge=1.0, le=3.0)
    pue_threshold_c: float = 12.0
    pue_per_degree_c: float = Field(default=0.015, ge=0.0)

    def water_l_per_kwh(self, temperature_c: float) -> float:
        return super().water_l_per_kwh(temperature_c) * (1.0 + 1.0 / self.cop)


CoolingConfig = Annotated[ClosedLoopLiquid | DryAdiabatic | Evaporative | ChilledWater, Field(discriminator="kind")]
"""``cooling:``: one of the kinds above, by ``kind``."""
