"""The scenario's optional ``limits:`` section: the most a run may cost (see :mod:`gigafactory_sim.estimate`)."""

from __future__ import annotations

from pydantic import ByteSize, Field

from gigafactory_sim.config.base import StrictModel

__all__ = ["LimitsConfig"]


class LimitsConfig(StrictModel):
    """``limits: {max_memory: 32GB, max_events: 2e9}``. ``--max-memory`` and ``--max-events`` override."""

    max_memory: ByteSize | None = Field(default=None, description="e.g. 16GB, 32GiB (default 8 GiB)")
    max_events: float | None = Field(default=None, gt=0, description="e.g. 2e9 (default 5e8)")
