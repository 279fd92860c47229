"""The scenario's ``grid:`` section: where the carbon, price, temperature and renewable series are read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gigafactory_sim.config.base import StrictModel
from gigafactory_sim.eed.config import PpaConfig
from gigafactory_sim.errors import InputProblem, ScenarioError
from gigafactory_sim.grid.formats import FORMAT_KINDS
from gigafactory_sim.grid.signals import SERIES_KINDS, Signal, load_signal
from gigafactory_sim.workload.traces import BUILTIN_PREFIX, resolve_data_path

__all__ = ["GridConfig", "GridSignals", "Renewables", "SeriesSource"]


SeriesFormat = Literal["long", "electricitymaps", "entsoe"]


class SeriesSource(StrictModel):
    """One series: a CSV long table (``time_utc``, ``zone``, value column), an Electricity Maps or ENTSO-E
    export as downloaded (``format:``, see :mod:`gigafactory_sim.grid.formats`), or the shipped 2020 extract."""

    path: str | None = Field(
        default=None,
        description="CSV (may be .gz); relative to the scenario file, or builtin:NAME; default: the shipped "
        "2020 hourly extract for this series (FR, DE; gigafactory_sim/data/grid/SOURCE.md)",
    )
    zone: str | None = Field(default=None, description="zone to select; default grid.zone")
    column: str | None = Field(default=None, description="value column; default the series' own")
    year: int | None = Field(default=None, description="use only this calendar year (UTC) of the file")
    format: SeriesFormat = Field(
        default="long",
        description="file layout: long (time_utc, zone, value column), electricitymaps (hourly carbon export), "
        "entsoe (Transparency Platform day-ahead prices CSV)",
    )
    intensity: Literal["direct", "lifecycle"] = Field(
        default="direct",
        description="format electricitymaps: the direct (operational) or lifecycle (LCA) carbon intensity column",
    )
    constant: float | None = Field(
        default=None, description="a constant value in the series' unit instead of a file (e.g. a contract price)"
    )

    @model_validator(mode="after")
    def _intensity_needs_electricitymaps(self) -> SeriesSource:
        if self.intensity != "direct" and self.format != "electricitymaps":
            raise ValueError(
                f"intensity is read from an Electricity Maps export (format: electricitymaps), not {self.format}"
            )
        if self.constant is not None and (self.path is not None or self.format != "long"):
            raise ValueError("give either a constant or a file (path, format), not both")
        if self.format != "long" and self.path is None:
            raise ValueError(f"format {self.format} reads a file you downloaded; give its path")
        return self


def _check_format(kind: str, src: SeriesSource | None) -> None:
    """A layout that only holds another kind of series (an ENTSO-E price file as grid.carbon) is an error."""
    if src is None:
        return
    kinds = FORMAT_KINDS[src.format]
    if kinds is not None and kind not in kinds:
        raise ValueError(f"format {src.format} holds {' or '.join(sorted(kinds))} series, not {kind}")


class Renewables(StrictModel):
    """On-site PV and wind: capacity (MW) x hourly capacity factor offsets grid import."""

    solar_mw: float = Field(default=0.0, ge=0)
    wind_mw: float = Field(default=0.0, ge=0)
    solar: SeriesSource = Field(default_factory=SeriesSource, description="solar capacity factors (solar_cf)")
    wind: SeriesSource = Field(default_factory=SeriesSource, description="wind capacity factors (wind_cf)")
    ppa: list[PpaConfig] = Field(
        default_factory=list, description="power-purchase agreements (off-site; counted in the EED report)"
    )

    def needs(self, profile: str) -> bool:
        """Whether the capacity-factor series ``profile`` (solar, wind) is read: an on-site plant or a PPA uses it."""
        on_site = self.solar_mw if profile == "solar" else self.wind_mw
        return on_site > 0 or any(p.profile == profile for p in self.ppa)

    @field_validator("solar", "wind")
    @classmethod
    def _format_fits(cls, v: SeriesSource, info: object) -> SeriesSource:
        _check_format(str(getattr(info, "field_name", "")), v)
        return v


class GridConfig(StrictModel):
    """The site's grid zone and signals. Every series must cover the horizon unless ``loop_year`` is set."""

    zone: str | None = Field(default=None, description="grid zone of every series; default facility.country")
    loop_year: bool = Field(
        default=False, description="repeat a one-year series, aligned on weekday and time of day nearest the same date"
    )
    carbon: SeriesSource | None = Field(default=None, description="carbon intensity, gCO2/kWh")
    price: SeriesSource | None = Field(default=None, description="day-ahead price, EUR/MWh")
    temperature: SeriesSource | None = Field(default=None, description="outdoor temperature, degC (for PUE)")
    humidity: SeriesSource | None = Field(
        default=None, description="outdoor relative humidity, fraction 0-1 (for cooling water)"
    )
    renewables: Renewables | None = None

    @field_validator("carbon", "price", "temperature", "humidity")
    @classmethod
    def _has_source(cls, v: SeriesSource | None, info: object) -> SeriesSource | None:
        name = str(getattr(info, "field_name", ""))
        spec = SERIES_KINDS[name]
        if v is not None and v.constant is not None:
            low, high = spec.low, spec.high
            if (low is not None and v.constant < low) or (high is not None and v.constant > high):
                raise ValueError(f"constant {v.constant:g} is out of range: {spec.hint}")
            return v
        if v is not None and v.path is None and spec.builtin is None:
            raise ValueError(f"there is no shipped {name} series; give its path or a constant")
        _check_format(name, v)
        return v

    def sources(self) -> dict[str, SeriesSource]:
        out: dict[str, SeriesSource] = {}
        for kind in ("carbon", "price", "temperature", "humidity"):
            src = getattr(self, kind)
            if src is not None:
                out[kind] = src
        if self.renewables is not None:
            if self.renewables.needs("solar"):
                out["solar"] = self.renewables.solar
            if self.renewables.needs("wind"):
                out["wind"] = self.renewables.wind
        return out


@dataclass(frozen=True)
class GridSignals:
    """The loaded signals (``None`` where the scenario has no such series)."""

    carbon: Signal | None = None
    price: Signal | None = None
    temperature: Signal | None = None
    solar: Signal | None = None
    wind: Signal | None = None
    humidity: Signal | None = None
    solar_mw: float = 0.0
    wind_mw: float = 0.0

    def all(self) -> list[Signal]:
        sigs = (self.carbon, self.price, self.temperature, self.solar, self.wind, self.humidity)
        return [s for s in sigs if s is not None]


def resolve_series_path(kind: str, src: SeriesSource, base_dir: Path) -> tuple[Path, bool]:
    """The file to read and whether it is the shipped extract."""
    if src.path is None:
        builtin = SERIES_KINDS[kind].builtin
        if builtin is None:
            raise ValueError(f"no shipped {kind} series; give a path")
        return resolve_data_path(BUILTIN_PREFIX + builtin, base_dir), True
    return resolve_data_path(src.path, base_dir), src.path.startswith(BUILTIN_PREFIX + "grid/")


def load_grid(cfg: GridConfig, default_zone: str, start: datetime, horizon_s: float, base_dir: Path) -> GridSignals:
    """Load and validate every configured series (:class:`ScenarioError` names file, line and field)."""
    signals: dict[str, Signal] = {}
    problems: list[InputProblem] = []
    for kind, src in cfg.sources().items():
        if src.constant is not None:
            signals[kind] = Signal.constant(kind, SERIES_KINDS[kind].unit, src.constant)
            continue
        path, shipped = resolve_series_path(kind, src, base_dir)
        zone = src.zone or cfg.zone or default_zone
        if shipped:
            zone = dict(SERIES_KINDS[kind].aliases).get(zone, zone)
        field = f"grid.renewables.{kind}" if kind in ("solar", "wind") else f"grid.{kind}"
        try:
            signals[kind] = load_signal(
                kind,
                path,
                zone=zone,
                column=src.column,
                year=src.year,
                start=start,
                horizon_s=horizon_s,
                loop_year=cfg.loop_year,
                field=field,
                fmt=src.format,
                intensity=src.intensity,
            )
        except ScenarioError as exc:  # go on: report every series' problems at once
            problems += exc.problems
    if problems:
        raise ScenarioError(problems)
    ren = cfg.renewables
    return GridSignals(**signals, solar_mw=ren.solar_mw if ren else 0.0, wind_mw=ren.wind_mw if ren else 0.0)
