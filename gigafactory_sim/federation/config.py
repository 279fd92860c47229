"""The schema of a federation scenario: several sites, the network between them, residency rules, placement.

A scenario file with ``sites:`` is a :class:`Federation`; one with a top-level ``facility:`` is a single site
(:class:`~gigafactory_sim.config.scenario.Scenario`) and runs exactly as before. Every field is documented in the
README's section "Several European sites".
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.config.scenario import Facility, ScenarioBase
from gigafactory_sim.eed.config import EedIdentity, HeatReuseConfig
from gigafactory_sim.eed.cooling import CoolingConfig
from gigafactory_sim.energy.config import EnergyConfig
from gigafactory_sim.grid.config import GridConfig
from gigafactory_sim.inference.config import InferenceService
from gigafactory_sim.units import Duration
from gigafactory_sim.workload.synthetic import SyntheticTraining
from gigafactory_sim.workload.traces import TraceTraining

__all__ = [
    "EU_COUNTRIES",
    "DataConfig",
    "FederatedService",
    "FederatedSynthetic",
    "FederatedTrace",
    "FederatedWorkload",
    "Federation",
    "Link",
    "MigrationConfig",
    "Network",
    "PlacementConfig",
    "Residency",
    "Site",
    "Sovereignty",
]

EU_COUNTRIES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    ]
)
"""ISO 3166 codes of the 27 EU member states (Greece as GR, the ISO code; grid zones such as ``DK-DK1`` take
their country from the part before the dash)."""


def country_of(zone: str) -> str:
    """The country of a grid zone or country code: ``DK-DK1`` -> ``DK``, ``DE-LU`` -> ``DE``."""
    return zone.split("-", 1)[0].upper()


class Sovereignty(StrictModel):
    """Who a site answers to. ``eu``: the site's jurisdiction is an EU member state (default: from its country);
    ``operator``: ``eu_controlled``, or ``third_country`` when its operator is subject to a non-EU law with
    extraterritorial reach; ``assurance``: 1-4, ordered, higher is stricter (e.g. an EUCS-like level)."""

    eu: bool | None = Field(default=None, description="EU jurisdiction; default: the site's country is in the EU")
    operator: Literal["eu_controlled", "third_country"] = "eu_controlled"
    assurance: int = Field(default=2, ge=1, le=4)


class Site(StrictModel):
    """One site of the federation: its facility, grid and energy policies, and its sovereignty attributes."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    country: str = Field(min_length=2, description="grid zone (FR, DE, FI, DK-DK1, ...); also the jurisdiction")
    sovereignty: Sovereignty = Field(default_factory=Sovereignty)
    facility: Facility
    grid: GridConfig | None = None
    energy: EnergyConfig | None = None
    cooling: CoolingConfig | None = None
    heat_reuse: HeatReuseConfig | None = None
    eed: EedIdentity | None = None

    @property
    def jurisdiction(self) -> str:
        return country_of(self.country)

    @property
    def in_eu(self) -> bool:
        eu = self.sovereignty.eu
        return self.jurisdiction in EU_COUNTRIES if eu is None else eu

    @model_validator(mode="after")
    def _one_country(self) -> Self:
        if "country" in self.facility.model_fields_set and self.facility.country != self.country:
            raise ValueError(
                f"facility.country ({self.facility.country}) differs from the site's country ({self.country}); "
                "give the country once, on the site"
            )
        # the site's name and country are its facility's (so a resolved scenario file says so, and loads back)
        name = self.facility.name if "name" in self.facility.model_fields_set else self.name
        self.facility = self.facility.model_copy(update={"country": self.country, "name": name})
        self.facility.model_fields_set.update({"country", "name"})
        return self


class Link(StrictModel):
    """A link between two sites, full duplex: each direction carries ``bandwidth_gbps`` (Gb/s) shared fairly by
    its transfers; a transfer also waits the one-way ``latency_ms``; ``egress_eur_per_gb`` is charged per GB
    leaving a site over the link."""

    between: tuple[str, str]
    bandwidth_gbps: float = Field(gt=0, le=1e6)
    latency_ms: float = Field(default=10.0, ge=0, le=10_000)
    egress_eur_per_gb: float = Field(default=0.0, ge=0, le=100)

    @model_validator(mode="after")
    def _two_sites(self) -> Self:
        if self.between[0] == self.between[1]:
            raise ValueError(f"a link joins two different sites; got {self.between[0]!r} twice")
        return self


class Network(StrictModel):
    """Links between sites, and the one-way latency from each user region (a country code) to each site."""

    links: list[Link] = Field(default_factory=list)
    regions: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="one-way latency in ms, {region: {site: ms}}"
    )


class Residency(StrictModel):
    """Where a workload's data may be processed. Every rule given must hold for a site to be allowed."""

    countries: list[str] | None = Field(default=None, description="allowed jurisdictions (country codes)")
    eu_only: bool = Field(default=False, description="only sites under EU jurisdiction")
    min_assurance: int = Field(default=1, ge=1, le=4, description="lowest site assurance level allowed")
    operator: Literal["any", "eu_controlled"] = Field(
        default="any", description="eu_controlled: no site whose operator is subject to third-country law"
    )


class DataConfig(StrictModel):
    """What a job must move to run away from home: its dataset, moved from the home site over the link before
    the job can start at another site; and its checkpoint, moved over the link when it migrates."""

    dataset_gb: float = Field(default=0.0, ge=0, le=1e9)
    checkpoint_gb: float = Field(default=0.0, ge=0, le=1e9)


class MigrationConfig(StrictModel):
    """Move long training jobs to a cleaner (``by: carbon``) or cheaper (``by: price``) allowed site while they
    run. Every ``interval``, a running job with at least ``min_remaining`` of work left moves when another site
    its residency allows, linked to its site, where it fits at once, has a mean intensity (or price) over the
    rest of its run, after the checkpoint's transfer, at least ``min_gain`` below its site's. It stops with
    its progress (from its last checkpoint when checkpointing is on), its checkpoint crosses the link, and it
    resumes there."""

    by: Literal["carbon", "price"] = "carbon"
    interval: Duration = 6 * 3600.0
    min_remaining: Duration = 12 * 3600.0
    min_gain: float = Field(default=0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if self.interval <= 0:
            raise ValueError("interval must be positive")
        return self


class _Placed(StrictModel):
    """What a workload of a federation adds: its residency, its home site, and its data."""

    residency: Residency = Field(default_factory=Residency)
    home: str | None = Field(default=None, description="home site (default: the first site the residency allows)")
    data: DataConfig = Field(default_factory=DataConfig)


class FederatedSynthetic(SyntheticTraining, _Placed):
    """A synthetic training stream with a residency, a home site and data sizes."""


class FederatedTrace(TraceTraining, _Placed):
    """A replayed training trace with a residency, a home site and data sizes."""


class FederatedService(InferenceService):
    """An inference service of a federation: replicas at every site in ``sites`` (default: every site its
    residency allows), demand from user ``regions`` (country shares of the service's demand; default all from
    its home site's country)."""

    residency: Residency = Field(default_factory=Residency)
    home: str | None = None
    sites: list[str] | None = Field(default=None, description="sites that host replicas")
    regions: dict[str, float] | None = Field(default=None, description="share of demand by user country")

    @model_validator(mode="after")
    def _shares(self) -> Self:
        r = self.regions
        if r is not None and (not r or any(v < 0 for v in r.values()) or sum(r.values()) <= 0):
            raise ValueError("regions: give non-negative shares with a positive sum")
        return self


FederatedSource = Annotated[FederatedSynthetic | FederatedTrace, Field(discriminator="kind")]


class FederatedWorkload(StrictModel):
    reference_gpu: str | None = Field(default=None, description="GPU on which job work is measured")
    training: list[FederatedSource] = Field(default_factory=list)
    inference: list[FederatedService] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        for what, names in (
            ("training source", [s.name for s in self.training]),
            ("service", [s.name for s in self.inference]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what} names must be unique; repeated: {', '.join(dupes)}")
        return self


class HomePlacement(StrictModel):
    """``home``: every job runs at its home site."""

    kind: Literal["home"] = "home"


class LeastLoadedPlacement(StrictModel):
    """``least_loaded``: the allowed site with the smallest committed share (allocated + queued GPUs / GPUs)."""

    kind: Literal["least_loaded"] = "least_loaded"


class EarliestStartPlacement(StrictModel):
    """``earliest_start``: the allowed site where the job is estimated to start first (data transfer, then the
    work queued ahead of it and the running work, drained at the site's GPU count)."""

    kind: Literal["earliest_start"] = "earliest_start"


class CarbonAwarePlacement(StrictModel):
    """``carbon_aware``: the allowed site with the lowest mean carbon intensity over the job's estimated run
    (a perfect forecast from the site's series), after its estimated start there."""

    kind: Literal["carbon_aware"] = "carbon_aware"


class PriceAwarePlacement(StrictModel):
    """``price_aware``: the allowed site where the job's estimated energy cost plus its data's egress is lowest
    (mean day-ahead price over its estimated run)."""

    kind: Literal["price_aware"] = "price_aware"


class WeightedPlacement(StrictModel):
    """``weighted``: the allowed site with the lowest weighted score; each term (estimated start delay, carbon,
    cost incl. egress) is divided by its largest magnitude over the candidate sites before weighting."""

    kind: Literal["weighted"] = "weighted"
    wait: float = Field(default=1.0, ge=0)
    carbon: float = Field(default=1.0, ge=0)
    cost: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> Self:
        if self.wait + self.carbon + self.cost <= 0:
            raise ValueError("give at least one positive weight")
        return self


PlacementConfig = Annotated[
    HomePlacement
    | LeastLoadedPlacement
    | EarliestStartPlacement
    | CarbonAwarePlacement
    | PriceAwarePlacement
    | WeightedPlacement,
    Field(discriminator="kind"),
]


class Federation(ScenarioBase):
    """A scenario of several sites on one clock: sites, the network, the workload with its residency rules, and
    the placement policy. Scheduling, training power, checkpointing and reporting are shared by every site."""

    sites: list[Site] = Field(min_length=1, max_length=64)
    network: Network = Field(default_factory=Network)
    workload: FederatedWorkload = Field(default_factory=FederatedWorkload)
    placement: PlacementConfig = Field(default_factory=HomePlacement)
    migration: MigrationConfig | None = Field(default=None, description="move running jobs (off by default)")
    initial_state: Literal["empty", "steady"] = Field(
        default="empty",
        description="empty: every site starts idle; steady: pre-filled with running jobs drawn from each "
        "synthetic source and placed at t = 0 (README, 'Several European sites')",
    )

    @property
    def site_names(self) -> list[str]:
        return [s.name for s in self.sites]

    @property
    def gpus(self) -> int:
        return sum(s.facility.gpus for s in self.sites)
