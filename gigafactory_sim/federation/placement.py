"""Placement policies: which allowed site a training job goes to. Plain objects, no SimPy.

The federation hands a policy only the sites the job's residency allows and where it fits (one
:class:`Candidate` each, with the estimates every policy may use); the policy returns one of them. So no policy,
however its score is built, can pick a site the residency forbids. A new policy is one class with ``choose`` and
one entry in :data:`PLACEMENTS` (and its config in :mod:`gigafactory_sim.federation.config`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from gigafactory_sim.federation.config import PlacementConfig, WeightedPlacement

__all__ = ["PLACEMENTS", "Candidate", "PlacementPolicy", "build_placement"]


class Candidate(NamedTuple):
    """One allowed site for one job, with the estimates made when the job arrives.

    ``start_delay_s``: the data transfer (at the link's current share) plus the estimated wait in the site's
    queue; ``committed_share``: (allocated + queued GPUs) / GPUs of the clusters it may use; ``carbon_g_per_kwh``
    and ``price_eur_per_mwh``: the site's mean over the job's estimated run (perfect forecast from its series; 0
    without one); ``energy_mwh``: the job's estimated facility energy there; ``egress_eur``: moving its data."""

    site: int
    home: bool
    committed_share: float
    start_delay_s: float
    transfer_s: float
    egress_eur: float
    carbon_g_per_kwh: float
    price_eur_per_mwh: float
    energy_mwh: float

    @property
    def carbon_kg(self) -> float:
        return self.energy_mwh * self.carbon_g_per_kwh  # MWh x g/kWh = kg

    @property
    def cost_eur(self) -> float:
        return self.energy_mwh * self.price_eur_per_mwh + self.egress_eur


class PlacementPolicy(Protocol):
    needs: frozenset[str]
    """The estimates it reads beyond the transfer, egress and energy: any of ``wait`` (the queue wait in
    ``start_delay_s``), ``load`` (committed share), ``carbon``, ``price``; the others are left 0, so placement
    costs only what the policy uses."""

    def choose(self, candidates: Sequence[Candidate]) -> Candidate:
        """One of ``candidates`` (never empty; in the scenario's site order)."""
        ...


def _first_min(candidates: Sequence[Candidate], key: Callable[[Candidate], tuple[float, ...]]) -> Candidate:
    return min(candidates, key=key)  # min keeps the first of equals: ties go to the earlier site


class Home:
    """The home site (or, when the job cannot fit there, the allowed site where it starts first)."""

    needs = frozenset({"wait"})

    def choose(self, candidates: Sequence[Candidate]) -> Candidate:
        for c in candidates:
            if c.home:
                return c
        return _first_min(candidates, lambda c: (c.start_delay_s,))


class LeastLoaded:
    needs = frozenset({"load"})

    def choose(self, candidates: Sequence[Candidate]) -> Candidate:
        return _first_min(candidates, lambda c: (c.committed_share, c.start_delay_s))


class EarliestStart:
    needs = frozenset({"wait", "load"})

    def choose(self, candidates: Sequence[Candidate]) -> Candidate:
        return _first_min(candidates, lambda c: (c.start_delay_s, c.committed_share))


class CarbonAware:
    needs = frozenset({"wait", "carbon"})

    def choose(self, candidates: Sequence[Candidate]) -> Candidate:
        return _first_min(candidates, lambda c: (c.carbon_g_per_kwh, c.start_delay_s))


class PriceAware:
    needs = frozenset({"wait", "price"})

    def choose(self, candidates: Sequence[Candidate]) -> Candidate:
        return _first_min(candidates, lambda c: (c.cost_eur, c.start_delay_s))


class Weighted:
    """``wait x d' + carbon x c' + cost x e'``: the start delay, the carbon and the cost (incl. egress), each
    over its largest magnitude among the candidates (``x / max |x|``; 0 when all are 0), so a term keeps its
    relative size: a 10 % carbon difference weighs a tenth of a wait of none against the longest."""

    needs = frozenset({"wait", "carbon", "price"})

    def __init__(self, cfg: WeightedPlacement) -> None:
        self.weights = (cfg.wait, cfg.carbon, cfg.cost)

    def choose(self, candidates: Sequence[Candidate]) -> Candidate:
        terms = [(c.start_delay_s, c.carbon_kg, c.cost_eur) for c in candidates]
        scales = [max(abs(t[k]) for t in terms) for k in range(3)]

        def score(i: int) -> float:
            return sum(w * (terms[i][k] / scales[k] if scales[k] > 0 else 0.0) for k, w in enumerate(self.weights))

        return candidates[min(range(len(candidates)), key=score)]


PLACEMENTS: dict[str, Callable[[PlacementConfig], PlacementPolicy]] = {
    "home": lambda cfg: Home(),
    "least_loaded": lambda cfg: LeastLoaded(),
    "earliest_start": lambda cfg: EarliestStart(),
    "carbon_aware": lambda cfg: CarbonAware(),
    "price_aware": lambda cfg: PriceAware(),
    "weighted": lambda cfg: Weighted(cfg),  # type: ignore[arg-type]
}
"""Placement policies by the config's ``kind``."""


def build_placement(cfg: PlacementConfig) -> PlacementPolicy:
    return PLACEMENTS[cfg.kind](cfg)
