"""Grid time series (carbon, price, temperature, capacity factors, power caps) as piecewise-constant signals.

A series is read from a CSV long table like ``../shared/data/grid/``: ``time_utc`` (ISO 8601, UTC; a naive
time is taken as UTC), an optional ``zone`` column, and a value column whose name carries its unit
(``carbon_g_per_kwh``, ``price_eur_per_mwh``, ``temperature_c``, ``solar_cf``, ``wind_cf``, ``power_cap_mw``),
or from an Electricity Maps carbon export or an ENTSO-E day-ahead price export as downloaded (``fmt``; the
layouts are parsed in :mod:`gigafactory_sim.grid.formats`). A row's value holds from its time until the next
row's time (hour-start convention). Validation, the same for every layout, reports with file, physical line and
field: unknown zone, bad time, duplicate times, rows not evenly spaced (gaps), a step longer than an hour,
values out of range or in the wrong unit, and a series that does not cover the simulated
``[start, start + horizon)``. With ``loop_year`` a series spanning exactly one year (365 or 366 days) is
repeated; see :func:`loop_offset_s` for how it is aligned.

Times inside the simulator are seconds from the scenario start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from gigafactory_sim.errors import InputProblem, ScenarioError
from gigafactory_sim.grid.formats import (
    FORMAT_KINDS,
    FORMATS,
    FormatProblem,
    ParsedSeries,
    SeriesRequest,
    read_table,
)

__all__ = ["SERIES_KINDS", "SeriesKind", "Signal", "load_signal", "loop_offset_s", "read_series"]

DAY_S = 86400.0
WEEK_S = 7 * DAY_S


@dataclass(frozen=True)
class Signal:
    """A piecewise-constant signal: ``values[i]`` on ``[times_s[i], times_s[i + 1])``; ``times_s[0] <= 0``.

    ``times_s`` are seconds from the scenario start, strictly increasing; the last value holds to infinity.
    """

    name: str
    unit: str
    times_s: np.ndarray
    values: np.ndarray

    @classmethod
    def constant(cls, name: str, unit: str, value: float) -> Signal:
        return cls(name, unit, np.array([0.0]), np.array([float(value)]))

    def at(self, t_s: float) -> float:
        """The value in force at ``t_s`` (right-continuous: a breakpoint takes its new value)."""
        i = int(np.searchsorted(self.times_s, t_s, side="right")) - 1
        return float(self.values[max(i, 0)])

    def breakpoints(self, horizon_s: float) -> np.ndarray:
        """Times in ``(0, horizon_s)`` where the value may change."""
        t = self.times_s
        return t[(t > 0.0) & (t < horizon_s)]

    def integral(self, t0_s: float, t1_s: float) -> float:
        """Exact integral of the signal over ``[t0_s, t1_s]`` (value x seconds)."""
        if t1_s <= t0_s:
            return 0.0
        edges = np.concatenate(([t0_s], self.breakpoints_between(t0_s, t1_s), [t1_s]))
        mids = edges[:-1]
        idx = np.clip(np.searchsorted(self.times_s, mids, side="right") - 1, 0, None)
        return float(np.sum(self.values[idx] * np.diff(edges)))

    def breakpoints_between(self, t0_s: float, t1_s: float) -> np.ndarray:
        t = self.times_s
        return t[(t > t0_s) & (t < t1_s)]


@dataclass(frozen=True)
class SeriesKind:
    """What a series measures: its column (unit in the name), the plausible range, the shipped extract."""

    column: str
    unit: str
    low: float | None
    high: float | None
    builtin: str | None
    hint: str  # what a value out of range probably means
    aliases: tuple[tuple[str, str], ...] = ()  # zone aliases for the shipped extract


SERIES_KINDS: dict[str, SeriesKind] = {
    "carbon": SeriesKind(
        "carbon_g_per_kwh",
        "gCO2/kWh",
        0.0,
        2000.0,
        "grid/carbon_2020.csv.gz",
        "carbon intensity is gCO2/kWh (kg/kWh x 1000; g/MWh / 1000); it cannot be negative",
    ),
    "price": SeriesKind(
        "price_eur_per_mwh",
        "EUR/MWh",
        -5000.0,
        10000.0,
        "grid/price_2020.csv.gz",
        "prices are EUR/MWh (EUR/kWh x 1000)",
        aliases=(("DE", "DE-LU"),),
    ),
    "temperature": SeriesKind(
        "temperature_c", "degC", -90.0, 70.0, None, "temperatures are degrees Celsius (kelvin - 273.15)"
    ),
    "solar": SeriesKind(
        "solar_cf",
        "fraction",
        0.0,
        1.0,
        "grid/renewables_2020.csv.gz",
        "capacity factors are fractions 0-1 (percent / 100)",
    ),
    "wind": SeriesKind(
        "wind_cf",
        "fraction",
        0.0,
        1.0,
        "grid/renewables_2020.csv.gz",
        "capacity factors are fractions 0-1 (percent / 100)",
    ),
    "power_cap": SeriesKind("power_cap_mw", "MW", 0.0, None, None, "power caps are MW of facility grid draw"),
    "humidity": SeriesKind(
        "relative_humidity", "fraction", 0.0, 1.0, None, "relative humidity is a fraction 0-1 (percent / 100)"
    ),
    "heat_demand": SeriesKind("heat_demand_mw", "MW", 0.0, None, None, "heat demand is MW of heat (kW / 1000)"),
}


def _lines(index: pd.Index | np.ndarray, limit: int = 5) -> str:
    """The physical lines of rows (their index), the first ``limit`` of them."""
    rows = [int(i) for i in list(index)[:limit]]
    more = f" (and {len(index) - limit} more)" if len(index) > limit else ""
    return ", ".join(str(r) for r in rows) + more


@dataclass(frozen=True)
class _Series:
    """A validated series: unix times (s), values, the step (s) and each row's physical line."""

    unix_s: np.ndarray
    values: np.ndarray
    step_s: float
    lines: np.ndarray


class _Fail:
    """Builds the :class:`ScenarioError` of one series: its file and scenario field, a line and sub-field."""

    def __init__(self, file: str, field: str) -> None:
        self.file = file
        self.field = field

    def __call__(self, message: str, line: int | None = None, sub: str = "path") -> ScenarioError:
        return ScenarioError([InputProblem(file=self.file, line=line, field=f"{self.field}.{sub}", message=message)])


def _parse(path: Path, kind: str, fmt: str, request: SeriesRequest, fail: _Fail) -> ParsedSeries:
    """Read the file and run the layout's parser (file, layout and zone problems raised here)."""
    if fmt not in FORMATS:
        raise fail(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}", sub="format")
    if not path.is_file():
        raise fail("series file not found")
    try:
        raw = read_table(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, OSError) as exc:
        raise fail(f"cannot parse CSV: {exc}") from None
    kinds = FORMAT_KINDS[fmt]
    if kinds is not None and kind not in kinds:
        raise fail(
            f"format {fmt} holds {' or '.join(sorted(kinds))} series, not {kind}; this series takes format long"
            + (" or entsoe" if kind == "price" else " or electricitymaps" if kind == "carbon" else ""),
            line=1,
            sub="format",
        )
    try:
        return FORMATS[fmt](raw, request)
    except FormatProblem as exc:
        raise fail(exc.message, line=exc.line, sub=exc.sub) from None


def _check_rows(parsed: ParsedSeries, year: int | None, fail: _Fail) -> tuple[pd.Series, pd.Series]:
    """Times and values parsed, the year selected, sorted, without duplicates: ``(UTC times, values)``."""
    frame, col = parsed.frame, parsed.value_column
    times, values = frame["time"], frame["value"]
    bad = frame.index[times.isna().to_numpy()]
    if len(bad):
        raise fail(f"bad {parsed.time_column} at line(s) {_lines(bad)} ({parsed.time_expected})", line=int(bad[0]))
    bad = frame.index[values.isna().to_numpy()]
    if len(bad):
        raise fail(f"missing or non-numeric {col} at line(s) {_lines(bad)}", line=int(bad[0]))
    if year is not None:
        keep = (times.dt.year == year).to_numpy()
        if not keep.any():
            first = int(frame.index[0]) if len(frame) else None
            raise fail(f"no rows in year {year}", line=first, sub="year")
        times, values = times[keep], values[keep]
    order = np.argsort(times.to_numpy(), kind="stable")
    times, values = times.iloc[order], values.iloc[order]
    dup = times.index[times.duplicated(keep="first").to_numpy()]
    if len(dup):
        raise fail(f"duplicate times at line(s) {_lines(dup)}", line=int(dup[0]))
    return times, values


def _check_values(values: pd.Series, kind: str, col: str, fail: _Fail) -> None:
    """Values inside the kind's plausible range and not in a likely wrong unit."""
    spec = SERIES_KINDS[kind]
    if spec.low is not None and (values < spec.low).any():
        bad = values.index[(values < spec.low).to_numpy()]
        raise fail(f"{col} below {spec.low:g} at line(s) {_lines(bad)}: {spec.hint}", line=int(bad[0]))
    if spec.high is not None and (values > spec.high).any():
        bad = values.index[(values > spec.high).to_numpy()]
        raise fail(f"{col} above {spec.high:g} at line(s) {_lines(bad)}: {spec.hint}", line=int(bad[0]))
    first = int(values.index[0]) if len(values) else None
    if kind == "carbon" and len(values) and values.max() < 2.0:
        raise fail(f"{col} never reaches 2 g/kWh: wrong unit? {spec.hint}", line=first, sub="column")
    if kind == "price" and len(values) and values.abs().max() < 1.0:
        raise fail(f"{col} stays within +-1: wrong unit? {spec.hint}", line=first, sub="column")


def _check_steps(times: pd.Series, gap_note: str, fail: _Fail) -> tuple[np.ndarray, float]:
    """Evenly spaced rows, hourly or finer: ``(unix times s, step s)``."""
    unix = (times.dt.tz_convert(UTC) - pd.Timestamp(0, tz=UTC)).dt.total_seconds().to_numpy()
    if len(unix) < 2:
        raise fail("a series needs at least two rows", line=int(times.index[0]) if len(times) else None)
    diffs = np.diff(unix)
    steps, counts = np.unique(diffs, return_counts=True)
    step = float(steps[np.argmax(counts)])
    if step > 3600.0:
        raise fail(f"rows are {step / 3600:g} h apart; hourly or finer is needed", line=int(times.index[1]))
    odd = np.flatnonzero(diffs != step)
    if len(odd):
        k = int(odd[0])
        where = times.index[odd + 1]
        raise fail(
            f"rows not evenly spaced every {step:g} s: {len(odd)} gap(s) or irregular step(s), the "
            f"first between {times.iloc[k].isoformat()} and {times.iloc[k + 1].isoformat()} (line(s) "
            f"{_lines(where)}){gap_note}",
            line=int(where[0]),
        )
    return unix, step


def _read(
    path: Path,
    kind: str,
    zone: str | None,
    column: str | None,
    year: int | None,
    field: str,
    fmt: str,
    intensity: str,
) -> _Series:
    spec = SERIES_KINDS[kind]
    fail = _Fail(str(path), field)
    request = SeriesRequest(
        kind=kind,
        zone=zone,
        column=column,
        default_column=spec.column,
        unit=spec.unit,
        hint=spec.hint,
        intensity=intensity,
        zone_aliases=spec.aliases,
    )
    parsed = _parse(path, kind, fmt, request, fail)
    times, values = _check_rows(parsed, year, fail)
    _check_values(values, kind, parsed.value_column, fail)
    unix, step = _check_steps(times, parsed.gap_note, fail)
    return _Series(unix, values.to_numpy(dtype=float), step, times.index.to_numpy(dtype=int))


def read_series(
    path: Path,
    kind: str,
    zone: str | None,
    column: str | None,
    year: int | None,
    field: str,
    *,
    fmt: str = "long",
    intensity: str = "direct",
) -> tuple[np.ndarray, np.ndarray, float]:
    """Read and validate one zone's series: ``(unix times s, values, step s)``, evenly spaced.

    ``fmt`` is the file's layout (a key of :data:`~gigafactory_sim.grid.formats.FORMATS`); ``intensity``
    picks the direct or life-cycle column of an Electricity Maps export.
    """
    s = _read(path, kind, zone, column, year, field, fmt, intensity)
    return s.unix_s, s.values, s.step_s


def loop_offset_s(start: datetime, block_start_unix: float) -> float:
    """Whole weeks to subtract from simulated time so that it falls on the same weekday and time of day in the
    data's year, nearest the same date (weekly and seasonal patterns line up); then wrapped into the block."""
    start_unix = start.timestamp()
    block_year = datetime.fromtimestamp(block_start_unix, UTC).year
    same_date = start.replace(year=block_year, day=min(start.day, 28) if start.month == 2 else start.day)
    shift = start_unix - same_date.timestamp()
    return round(shift / WEEK_S) * WEEK_S


def load_signal(
    kind: str,
    path: Path,
    *,
    zone: str | None,
    column: str | None,
    year: int | None,
    start: datetime,
    horizon_s: float,
    loop_year: bool,
    field: str,
    fmt: str = "long",
    intensity: str = "direct",
) -> Signal:
    """The signal of ``kind`` for ``[start, start + horizon_s)``, validated (see the module docstring); ``fmt``
    and ``intensity`` as in :func:`read_series`."""
    spec = SERIES_KINDS[kind]
    series = _read(path, kind, zone, column, year, field, fmt, intensity)
    unix, values, step = series.unix_s, series.values, series.step_s
    first_line, last_line = int(series.lines[0]), int(series.lines[-1])
    t0 = start.timestamp()
    t_end = t0 + horizon_s
    first, last_end = unix[0], unix[-1] + step
    if loop_year:
        span = last_end - first
        if not (365 * DAY_S <= span <= 366 * DAY_S):
            raise ScenarioError.single(
                str(path),
                f"{field}.path",
                f"loop_year needs a series spanning one year (365 or 366 days); "
                f"this one spans {span / DAY_S:.2f} days, lines {first_line} to {last_line} (select one with "
                f"`year:`)",
                line=last_line,
            )
        n = len(values)
        offset = loop_offset_s(start, first)
        pos0 = (t0 - offset - first) % span  # position of the scenario start inside the block
        i0 = int(pos0 // step)
        k = math.ceil((horizon_s + (pos0 - i0 * step)) / step) + 1
        times_s = np.arange(k) * step - (pos0 - i0 * step)
        vals = values[(i0 + np.arange(k)) % n]
        return Signal(kind, spec.unit, times_s, vals)
    if first > t0 or last_end < t_end:

        def iso(x: float) -> str:
            return datetime.fromtimestamp(x, UTC).isoformat().replace("+00:00", "Z")

        raise ScenarioError.single(
            str(path),
            f"{field}.path",
            f"the series covers {iso(first)} (line {first_line}) to {iso(last_end)} (line {last_line}), not the "
            f"simulated {iso(t0)} to {iso(t_end)}; move `start`, shorten `horizon`, or set grid.loop_year: true to "
            f"repeat one year",
            line=first_line if first > t0 else last_line,
        )
    i0 = int(np.searchsorted(unix, t0, side="right")) - 1
    i1 = int(np.searchsorted(unix, t_end, side="left"))
    return Signal(kind, spec.unit, unix[i0:i1] - t0, values[i0:i1])
