"""Units: durations written like ``30d``, ``12h``, ``90s``; seconds are the one internal time unit."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo

__all__ = [
    "FROM_FILE",
    "J_PER_KWH",
    "J_PER_MWH",
    "MAX_DURATION_S",
    "S_PER_DAY",
    "S_PER_H",
    "W_PER_MW",
    "Duration",
    "format_duration",
    "parse_duration_s",
]

J_PER_KWH = 3.6e6
J_PER_MWH = 3.6e9
W_PER_MW = 1e6
S_PER_H = 3600.0
S_PER_DAY = 86400.0

_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
MAX_DURATION_S = 1e11
"""The longest duration any field accepts (about 3,000 years): beyond it no float arithmetic on times is exact
enough to simulate, and sizes derived from it overflow."""
_PATTERN = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\s*(ms|s|min|m|h|d|w)\s*$")


def parse_duration_s(value: Any) -> float:
    """Parse ``"30d"``, ``"1.5h"``, ``"90s"``, ``"15m"``/``"15min"``, ``"200ms"`` into seconds.

    A bare number is rejected: a duration must carry its unit so that a file never means minutes where
    the reader thinks hours.
    """
    if isinstance(value, bool):
        raise ValueError("a duration needs a unit, e.g. '30d', '12h', '15m' or '90s'")
    if isinstance(value, int | float):
        raise ValueError(f"{value!r} has no unit; write e.g. '{value}s' or '{value}h'")
    if not isinstance(value, str):
        raise ValueError("a duration is a string like '30d', '12h', '15m' or '90s'")
    match = _PATTERN.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a duration; write e.g. '30d', '12h', '15m' or '90s'")
    number = match.group(1)
    exponent = number.lower().partition("e")[2]
    if exponent and abs(int(exponent)) > 400:  # Fraction would build a huge integer first
        raise ValueError(f"{value!r} is out of range (at most {MAX_DURATION_S:.3g} s)")
    # exact decimal arithmetic: '1.1h' is 3960 s, not 3960.0000000000005
    exact = Fraction(number) * Fraction(_UNITS_S[match.group(2)])
    if exact > MAX_DURATION_S:
        raise ValueError(f"{value!r} is out of range (at most {MAX_DURATION_S:.3g} s, about 3,000 years)")
    return float(exact)


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` in the largest unit that divides it."""
    for unit in ("w", "d", "h", "m"):
        size = _UNITS_S[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    text = repr(float(seconds))  # shortest exact spelling: never rounds
    return f"{text[:-2] if text.endswith('.0') else text}s"


FROM_FILE = "from_file"
"""Validation-context flag: set when validating user files, where a duration must carry its unit."""


def _validate_duration(value: Any, info: ValidationInfo) -> float:
    from_file = bool(info.context and info.context.get(FROM_FILE))
    if not from_file and isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)  # built in Python: numbers are seconds
        if not math.isfinite(seconds) or seconds > MAX_DURATION_S:
            raise ValueError(f"{value!r} s is out of range (at most {MAX_DURATION_S:.3g} s)")
    else:
        seconds = parse_duration_s(value)
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(_validate_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""A duration field: written ``'12h'`` in YAML, held as seconds (float) inside."""
