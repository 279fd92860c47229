"""PUE models: facility power = ``a(T) x IT power + b`` (an affine power chain).

``facility.pue`` is a plain number (constant PUE, ``b = 0``) or a tagged model. The temperature model raises
the load-proportional part above a free-cooling threshold and adds a load-independent overhead (lighting,
offices, UPS and transformer no-load losses), so PUE = a(T) + b / IT rises at low IT load. Affine in IT power,
the chain stays invertible: the largest IT power under a facility limit is ``(limit - b) / a``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag

from gigafactory_sim.config.base import StrictModel

__all__ = ["ConstantPue", "PueConfig", "PueModel", "TemperaturePue", "pue_coefficients"]


class ConstantPue(StrictModel):
    """``kind: constant``: facility power = ``value`` x IT power (same as a plain number)."""

    kind: Literal["constant"] = "constant"
    value: float = Field(ge=1.0, le=3.0)

    def coefficients(self, temperature_c: float | None) -> tuple[float, float]:
        return self.value, 0.0


class TemperaturePue(StrictModel):
    """``kind: temperature``: ``a = min(base + per_degree_c x max(T - threshold_c, 0), max_a)``, ``b =
    fixed_mw``.

    Defaults: a liquid-cooled AI hall at 1.10 with free cooling up to 18 degC, +0.01 per degree above
    (REFERENCES.md, Facilities: new halls target 1.1-1.2; industry average 1.56-1.58).
    """

    kind: Literal["temperature"] = "temperature"
    base: float = Field(default=1.10, ge=1.0, le=3.0, description="load-proportional PUE at or below the threshold")
    per_degree_c: float = Field(default=0.01, ge=0.0, description="added to a per degC above the threshold")
    threshold_c: float = Field(default=18.0, description="free cooling up to this outdoor temperature")
    max_a: float = Field(default=2.0, ge=1.0, le=3.0, description="ceiling of the load-proportional part")
    fixed_mw: float = Field(default=0.0, ge=0.0, description="load-independent overhead, MW")
    temperature_c: float | None = Field(
        default=None, description="constant outdoor temperature when the grid section has no temperature series"
    )

    def coefficients(self, temperature_c: float | None) -> tuple[float, float]:
        t = self.temperature_c if temperature_c is None else temperature_c
        if t is None:
            raise ValueError("the temperature PUE model needs grid.temperature or temperature_c")
        a = min(self.base + self.per_degree_c * max(t - self.threshold_c, 0.0), self.max_a)
        return max(a, 1.0), self.fixed_mw * 1e6


PueModel = Annotated[ConstantPue | TemperaturePue, Field(discriminator="kind")]


def _pue_form(value: Any) -> str:
    return "model" if isinstance(value, dict | BaseModel) else "number"


PueConfig = Annotated[
    Annotated[Annotated[float, Field(ge=1.0, le=3.0)], Tag("number")] | Annotated[PueModel, Tag("model")],
    Discriminator(_pue_form),
]
"""``facility.pue``: a number (constant PUE) or a tagged model; a bad value is reported against one form only."""


def pue_coefficients(
    pue: float | ConstantPue | TemperaturePue, temperature_c: float | None = None
) -> tuple[float, float]:
    """``(a, b_w)`` with facility power = ``a x IT + b_w``."""
    if isinstance(pue, int | float):
        return float(pue), 0.0
    return pue.coefficients(temperature_c)
