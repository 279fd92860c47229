"""Grid signals of a site: carbon intensity, day-ahead price, outdoor temperature, on-site renewables."""

from gigafactory_sim.grid.config import GridConfig, GridSignals, Renewables, SeriesSource, load_grid
from gigafactory_sim.grid.signals import SERIES_KINDS, Signal, load_signal, read_series

__all__ = [
    "SERIES_KINDS",
    "GridConfig",
    "GridSignals",
    "Renewables",
    "SeriesSource",
    "Signal",
    "load_grid",
    "load_signal",
    "read_series",
]
