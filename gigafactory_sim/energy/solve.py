"""The exact solver for the largest common GPU power limit that fits a power budget."""

from __future__ import annotations

__all__ = ["MARGIN_W", "max_theta"]

MARGIN_W = 1e-3  # solve to a milliwatt under a limit, so float rounding never lands above it


def max_theta(pieces: list[tuple[float, float, float]], budget_w: float, theta_min: float) -> float | None:
    """Largest ``theta`` in ``[theta_min, 1]`` with ``sum(n * min(d, theta * B)) <= budget_w``; None if none.

    ``pieces`` are ``(n busy GPUs, demand d W, board limit B W)``.
    """

    # (list comprehensions, not generators, min(d, t) as a comparison and each total taken once: the same floats,
    # summed in the same order, for a fraction of the calls; the solver runs at most passes while a cap binds)
    def total(theta: float) -> float:
        return sum([n * (d if d <= (t := theta * b) else t) for n, d, b in pieces])

    at_full = total(1.0)
    if at_full <= budget_w:
        return 1.0
    at_lo = total(theta_min)
    if at_lo > budget_w:
        return None
    kinks = sorted({theta_min, 1.0, *[k for _, d, b in pieces if theta_min < (k := d / b) < 1.0]})
    lo = theta_min
    for hi in kinks[1:]:
        at_hi = at_full if hi == 1.0 else total(hi)  # (each total taken once: the same float every time)
        if at_hi > budget_w:
            # linear on [lo, hi]: slope = sum of n * B over pieces not yet at their demand
            slope = sum([n * b for n, d, b in pieces if d > lo * b])
            if slope <= 0.0:
                return lo
            return min(hi, lo + (budget_w - at_lo) / slope)
        lo, at_lo = hi, at_hi
    return 1.0
