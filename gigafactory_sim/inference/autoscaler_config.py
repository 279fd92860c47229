"""The autoscaler's settings (``autoscaler`` of a service, or of each pool of a disaggregated one)."""

from __future__ import annotations

from pydantic import Field, model_validator

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.units import Duration

__all__ = ["Autoscaler"]


class Autoscaler(StrictModel):
    """Replicas to serve the observed demand at ``target_utilisation`` of their capacity, within
    [min, max]. New replicas load weights for ``scale_up_delay`` (GPUs held, idle-with-context power, serving
    nothing); replicas are removed only after demand has stayed below them for ``scale_down_cooloff``."""

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=1000, ge=1)
    target_utilisation: float = Field(default=0.7, gt=0, le=1)
    scale_up_delay: Duration = 300.0
    scale_down_cooloff: Duration = 900.0

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaler:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas is larger than max_replicas")
        return self
