"""Shared base for scenario models: unknown fields are errors, so a typo never passes silently; ``inf`` and
``nan`` are refused in every number (YAML's ``.inf``, or ``1e400``), since no quantity of a scenario is infinite.

Every number is also bounded in size, in fields and inside their lists and mappings: an integer to 2**53, the
largest range in which a double (the engine's arithmetic) counts exactly, and a real to 1e30, which no quantity
of a facility approaches in any unit it is written in (a gigawatt-year is 3.2e16 J; an exabyte, 1e18 bytes), so
that the model's products of scenario numbers stay finite.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["MAX_FLOAT", "MAX_INT", "StrictModel"]

MAX_INT = 2**53  # integers beyond this are not exact in float64
MAX_FLOAT = 1e30


def out_of_range(value: Any) -> str | None:
    """Why ``value`` (a number, or a list, tuple or mapping of them) is too large for a scenario, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            return (
                f"{value} is too large: integers are limited to 2**53 ({MAX_INT:,}), the range a double counts exactly"
            )
        return None
    if isinstance(value, float):
        if abs(value) > MAX_FLOAT:
            return f"{value:g} is too large: numbers are limited to 1e30, which no quantity of a facility approaches"
        return None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ()
    for item in items:
        why = out_of_range(item)
        if why is not None:
            return why
    return None


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        why = out_of_range(value)
        if why is not None:
            raise ValueError(why)
        return value
