"""GPU power models: power and sustained speed as a function of offered load and power limit."""

from gigafactory_sim.power.models import (
    DvfsPowerModel,
    GpuPowerModel,
    InterpolatedPowerModel,
    LinearPowerModel,
)

__all__ = ["DvfsPowerModel", "GpuPowerModel", "InterpolatedPowerModel", "LinearPowerModel"]
