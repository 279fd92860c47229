"""Hourly outdoor temperatures built from published monthly climate normals, with a diurnal cycle.

No hourly temperature series ships with the project, so the EED tests and ``scenarios/eed-site.yaml`` use a
synthetic year: the monthly mean temperature (1991-2020 normals, rounded to 0.1 degC as published by
Meteo-France for Paris-Montsouris and by the DWD for Frankfurt/Main; values transcribed, not downloaded) is
interpolated linearly between mid-month points, and a cosine diurnal cycle of the month's mean daily range
(mean daily maximum - mean daily minimum) peaks at 15:00 local solar time. The result has the climate's
seasonal and daily shape but no weather (no heat waves, no cold spells): annual means of temperature-driven
figures (PUE, WUE) are close to a real year's, extremes are not. ``gigafactory_sim/data/grid/
temperature_normals_2020.csv.gz`` is :func:`normals_frame` for 2020, zones FR and DE.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gigafactory_sim.numerics import libm

__all__ = ["NORMALS", "hourly_temperature_c", "normals_frame"]

NORMALS: dict[str, tuple[tuple[float, ...], tuple[float, ...], float]] = {
    # zone: (monthly mean degC Jan..Dec, monthly mean daily range degC, longitude deg E)
    "FR": (  # Paris-Montsouris, 1991-2020 (Meteo-France)
        (5.4, 6.1, 9.2, 12.0, 15.6, 18.9, 21.1, 20.9, 17.3, 13.2, 8.7, 5.9),
        (4.7, 5.6, 7.3, 8.9, 9.3, 9.6, 9.9, 9.8, 8.7, 6.8, 5.1, 4.4),
        2.34,
    ),
    "DE": (  # Frankfurt/Main, 1991-2020 (Deutscher Wetterdienst)
        (1.6, 2.6, 6.2, 10.5, 14.5, 18.0, 20.0, 19.5, 15.2, 10.3, 5.6, 2.3),
        (5.5, 6.8, 8.9, 11.3, 11.6, 11.7, 12.0, 11.9, 10.9, 8.4, 5.9, 5.0),
        8.68,
    ),
}


def hourly_temperature_c(zone: str, year: int) -> pd.Series:
    """The synthetic hourly temperature (degC) of ``zone`` over calendar ``year`` (UTC hours)."""
    means, ranges, lon = NORMALS[zone]
    hours = pd.date_range(f"{year}-01-01", f"{year + 1}-01-01", freq="h", tz="UTC", inclusive="left")
    mid = [pd.Timestamp(year=year, month=m, day=15, tz="UTC") for m in range(1, 13)]
    # periodic interpolation: December of the year before and January of the year after close the ends
    knots = [mid[-1] - pd.DateOffset(years=1), *mid, mid[0] + pd.DateOffset(years=1)]
    x = np.array([k.timestamp() for k in knots])
    t = np.array([h.timestamp() for h in hours])
    mean = np.interp(t, x, [means[-1], *means, means[0]])
    rng = np.interp(t, x, [ranges[-1], *ranges, ranges[0]])
    solar_h = (hours.hour.to_numpy() + hours.minute.to_numpy() / 60.0 + lon / 15.0) % 24.0
    return pd.Series(mean + 0.5 * rng * libm.cos(2 * np.pi * (solar_h - 15.0) / 24.0), index=hours)


def normals_frame(year: int, zones: tuple[str, ...] = ("FR", "DE")) -> pd.DataFrame:
    """A long table (``time_utc``, ``zone``, ``temperature_c``) as the grid series reader takes it."""
    parts = []
    for zone in zones:
        s = hourly_temperature_c(zone, year)
        parts.append(
            pd.DataFrame(
                {
                    "time_utc": pd.DatetimeIndex(s.index).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "zone": zone,
                    "temperature_c": s.to_numpy().round(2),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)
