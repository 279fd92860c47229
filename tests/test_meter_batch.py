"""The meter's batched integration (no probe) gives bit-for-bit the integrals and peak of integrating one segment
at a time (the path taken with a probe), across batch boundaries and reads in between."""

from __future__ import annotations

import numpy as np
import pytest

from gigafactory_sim.sim.meter import Meter


class _NoProbe:
    def segment(self, it_w: float, t0_s: float, dt_s: float) -> None:
        pass

    def flush(self, integral: np.ndarray, now_s: float) -> None:
        pass


@pytest.mark.parametrize("it_names", [["a", "b", "c", "d"], ["a", "c", "e"]])  # adjacent (a slice), and not
def test_batched_meter_is_identical_to_one_segment_at_a_time(it_names: list[str]) -> None:
    names = ["a", "b", "c", "d", "e", "f"]
    batched, eager = Meter(names, it_names), Meter(names, it_names)
    eager.probe = _NoProbe()
    rng = np.random.default_rng(7)
    t = 0.0
    for step in range(3000):
        values = rng.random(len(names)) * 10.0 ** rng.integers(-2, 7, size=len(names))
        for m in (batched, eager):
            m.values[:] = values
        t += float(rng.choice([0.0, rng.random() * 1e3]))
        for m in (batched, eager):
            m.advance(t)
        if step % 777 == 0:  # a read mid-batch integrates what is kept
            assert np.array_equal(batched.integral, eager.integral)
    assert np.array_equal(batched.snapshot(), eager.snapshot())
    assert (batched.peak_it_w, batched.peak_it_at_s) == (eager.peak_it_w, eager.peak_it_at_s)
