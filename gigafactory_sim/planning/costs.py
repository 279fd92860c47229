"""The cost of a design per year: capital annualised over its lifetime, electricity, carbon and maintenance.

Capital: GPUs (per GPU type), nodes (servers, network share), the facility build (per MW of peak facility power),
the grid connection (per MW: the power cap when the design has a numeric one, else the peak grid draw) and on-site
solar and wind plants (per MW). Each is annualised with the capital recovery factor
``CRF = r(1+r)^n / ((1+r)^n - 1)`` at discount rate ``r`` over its lifetime ``n`` years. Electricity and carbon are
the run's (``cost.total_eur``, ``carbon.total_t``) scaled from the horizon to a year; maintenance is a share of the
capital per year.

Default figures (EUR; USD converted at ~0.92). Sources, and where a figure is an assumption:

- B200: USD 30,000-40,000 per GPU (Jensen Huang to CNBC, 19 March 2024) -> 32,000.
- H100: USD 25,000-40,000 per GPU (CNBC, Raymond James estimate, 2023) -> 25,000; H200: assumed 28,000 (press
  reports put it slightly above the H100); A100 assumed 10,000; MI300X assumed 15,000 (reported USD 10-15k).
- Node (CPUs, memory, NICs, chassis and its share of the fabric): assumed 60,000 per 8-GPU node (scaled by GPUs).
- Facility build: USD 9-13 million per MW of IT load (Cushman & Wakefield, Data Center Development Cost Guide
  2024) -> 10 million per MW, charged here on peak facility power.
- Grid connection: assumed 0.5 million per MW (substation and line share; varies widely by site).
- Solar PV: USD 758 per kW installed, utility scale, 2023 global average (IRENA, Renewable Power Generation Costs
  in 2023) -> 0.7 million per MW; onshore wind USD 1,160 per kW (same report) -> 1.07 million per MW.
- Lifetimes (assumed): IT 5 years, facility 20, grid connection 30, solar and wind 25. Discount rate 7 % (assumed
  weighted cost of capital). Maintenance 3 % of capital per year (assumed).
- Carbon price: EU ETS allowances averaged ~EUR 65 per t in 2024 (ICE EUA futures) -> 70 per t, assumed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from gigafactory_sim.config.base import StrictModel

__all__ = ["CostBreakdown", "Costs", "DesignSize", "annual_cost", "capital_recovery_factor", "design_size"]

S_PER_YEAR = 365.0 * 86400.0


class Lifetimes(StrictModel):
    """Years over which each kind of capital is annualised."""

    it: float = Field(default=5.0, gt=0, description="GPUs and nodes")
    facility: float = Field(default=20.0, gt=0)
    grid: float = Field(default=30.0, gt=0)
    renewables: float = Field(default=25.0, gt=0)


class Costs(StrictModel):
    """The cost model's figures (EUR); see the module docstring for the sources of the defaults."""

    gpu_eur: dict[str, float] = Field(
        default_factory=lambda: {
            "B200": 32_000.0,
            "H200-SXM": 28_000.0,
            "H100-SXM": 25_000.0,
            "A100-80GB": 10_000.0,
            "MI300X": 15_000.0,
        },
        description="capital per GPU, by GPU name (the scenario's gpu field); merged with the defaults",
    )
    default_gpu_eur: float = Field(default=25_000.0, ge=0, description="a GPU not in gpu_eur")
    node_eur_per_8_gpus: float = Field(default=60_000.0, ge=0, description="a node's share, per 8 GPUs it holds")
    facility_eur_per_mw: float = Field(default=10e6, ge=0)
    grid_connection_eur_per_mw: float = Field(default=0.5e6, ge=0)
    solar_eur_per_mw: float = Field(default=0.7e6, ge=0)
    wind_eur_per_mw: float = Field(default=1.07e6, ge=0)
    lifetime_years: Lifetimes = Field(default_factory=Lifetimes)
    discount_rate: float = Field(default=0.07, ge=0, le=1)
    maintenance_fraction: float = Field(default=0.03, ge=0, le=1, description="of capital, per year")
    carbon_eur_per_t: float = Field(default=70.0, ge=0)

    def gpu_price(self, gpu: str) -> float:
        return self.gpu_eur.get(gpu, self.default_gpu_eur)


def capital_recovery_factor(rate: float, years: float) -> float:
    """The share of a capital cost paid each year to repay it over ``years`` at ``rate`` (1/years at rate 0)."""
    if rate == 0:
        return 1.0 / years
    growth = (1.0 + rate) ** years
    return rate * growth / (growth - 1.0)


@dataclass(frozen=True)
class DesignSize:
    """What a design buys: GPUs by type, nodes (in units of 8 GPUs), power caps and on-site renewables."""

    gpus: dict[str, int]
    node_units: float
    power_cap_mw: float | None
    solar_mw: float
    wind_mw: float


def _facilities(scenario: Any) -> Iterator[tuple[Any, Any, Any]]:
    """``(facility, grid, energy)`` of a scenario, or of each site of a federation."""
    sites = getattr(scenario, "sites", None)
    if sites is not None:
        for site in sites:
            yield site.facility, site.grid, site.energy
    else:
        yield scenario.facility, scenario.grid, scenario.energy


def design_size(scenario: Any) -> DesignSize:
    """The size of a parsed scenario (:class:`Scenario` or :class:`Federation`)."""
    gpus: dict[str, int] = {}
    units = 0.0
    caps: list[float | None] = []
    solar = wind = 0.0
    for facility, grid, energy in _facilities(scenario):
        for cluster in facility.clusters:
            gpus[cluster.gpu] = gpus.get(cluster.gpu, 0) + cluster.nodes * cluster.gpus_per_node
            units += cluster.nodes * cluster.gpus_per_node / 8.0
        cap = getattr(energy, "power_cap_mw", None) if energy is not None else None
        caps.append(float(cap) if isinstance(cap, int | float) else None)
        renewables = getattr(grid, "renewables", None) if grid is not None else None
        if renewables is not None:
            solar += float(renewables.solar_mw)
            wind += float(renewables.wind_mw)
    cap_total = sum(c for c in caps if c is not None) if caps and all(c is not None for c in caps) else None
    return DesignSize(gpus, units, cap_total, solar, wind)


@dataclass(frozen=True)
class CostBreakdown:
    """EUR per year by item, capital in EUR, and the carbon in t per year."""

    items: dict[str, float]
    capital_eur: float
    carbon_t_per_year: float

    @property
    def total_eur_per_year(self) -> float:
        return sum(self.items.values())


def _mean(flats: Sequence[Mapping[str, float]], key: str) -> float:
    values = [f[key] for f in flats if key in f and f[key] == f[key]]
    return sum(values) / len(values) if values else 0.0


def _max(flats: Sequence[Mapping[str, float]], *keys: str) -> float:
    for key in keys:
        values = [f[key] for f in flats if key in f and f[key] == f[key]]
        if values:
            return max(values)
    return 0.0


def annual_cost(costs: Costs, size: DesignSize, flats: Sequence[Mapping[str, float]]) -> CostBreakdown:
    """The design's cost per year from its size and the flattened summaries of its replications."""
    peak_mw = _max(flats, "power.sum_of_site_peaks_mw", "power.peak_facility_mw")
    grid_mw = size.power_cap_mw if size.power_cap_mw is not None else _max(flats, "grid.peak_grid_import_mw") or peak_mw
    life = costs.lifetime_years
    crf = costs.discount_rate
    capital = {
        "gpus": sum(n * costs.gpu_price(g) for g, n in size.gpus.items()),
        "nodes": size.node_units * costs.node_eur_per_8_gpus,
        "facility": peak_mw * costs.facility_eur_per_mw,
        "grid_connection": grid_mw * costs.grid_connection_eur_per_mw,
        "renewables": size.solar_mw * costs.solar_eur_per_mw + size.wind_mw * costs.wind_eur_per_mw,
    }
    years = {"gpus": life.it, "nodes": life.it, "facility": life.facility}
    years |= {"grid_connection": life.grid, "renewables": life.renewables}
    horizon_s = _mean(flats, "horizon_s") or S_PER_YEAR
    per_year = S_PER_YEAR / horizon_s
    carbon_t = _mean(flats, "carbon.total_t") * per_year
    items = {f"capital_{k}": v * capital_recovery_factor(crf, years[k]) for k, v in capital.items()}
    items["maintenance"] = costs.maintenance_fraction * sum(capital.values())
    items["electricity"] = _mean(flats, "cost.total_eur") * per_year
    items["carbon"] = carbon_t * costs.carbon_eur_per_t
    return CostBreakdown(items, sum(capital.values()), carbon_t)
