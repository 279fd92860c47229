"""Named random streams spawned from the scenario's one seed.

Each consumer asks for its stream by a stable name, so adding a new stream never shifts another's numbers, and a
run is identical on any machine and in any sweep worker. Nothing here touches global random state.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["RandomStreams"]


class RandomStreams:
    """Factory of independent ``numpy.random.Generator`` objects keyed by name."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def get(self, name: str) -> np.random.Generator:
        key = zlib.crc32(name.encode("utf-8"))
        return np.random.default_rng(np.random.SeedSequence(entropy=self.seed, spawn_key=(key,)))
