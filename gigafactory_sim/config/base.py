"""Shared base for scenario models: unknown fields are errors, so a typo never passes silently; ``inf`` and
``nan`` are refused in every number (YAML's ``.inf``, or ``1e400``), since no quantity of a scenario is infinite."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
