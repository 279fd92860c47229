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


def test_it_power_sums_the_it_channels_in_their_order_wherever_they_are_named() -> None:
    """The meter keeps its IT channels first (their sum over a slice, no gather): IT power is the sum of those
    channels in the order given, bit for bit, and every channel keeps its own value and integral by name, however
    the IT channels lie among the others (12 of them: numpy's pairwise sum, not a plain running one)."""
    it_names = [f"it{k}" for k in (3, 0, 7, 1, 11, 5, 9, 2, 10, 4, 8, 6)]
    names = [n for k in range(12) for n in (f"x{k}", f"it{k}")]  # interleaved with the others
    scattered, first = Meter(names, it_names), Meter(it_names + [f"x{k}" for k in range(12)], it_names)
    assert [scattered.index[n] for n in it_names] == list(range(12))
    rng = np.random.default_rng(11)
    t = 0.0
    for _ in range(2000):
        values = {n: float(rng.random() * 10.0 ** rng.integers(-3, 8)) for n in names}
        for m in (scattered, first):
            for n, v in values.items():
                m.values[m.index[n]] = v
        expected = float(np.add.reduce(np.array([values[n] for n in it_names])))
        assert scattered.it_power_w() == first.it_power_w() == expected
        t += float(rng.random() * 100.0)
        for m in (scattered, first):
            m.advance(t)
    assert all(scattered.integral[scattered.index[n]] == first.integral[first.index[n]] for n in names)
    assert scattered.peak_it_w == first.peak_it_w
    with pytest.raises(ValueError, match="not among the channels"):
        Meter(["a"], ["a", "b"])
