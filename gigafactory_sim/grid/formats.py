"""File layouts a grid series is read from: our long table and the exports users already hold.

Each layout is a small parser in :data:`FORMATS`, keyed by the scenario's ``format:`` value. A parser takes the
raw table (every cell a string, the index the 1-based physical line of each row, the header being line 1) and
returns a :class:`ParsedSeries`: one row per time step with its UTC time (``NaT`` where the cell does not parse),
its value (``NaN`` where not numeric) and its line. It selects the zone and the value column and converts local
times to UTC; every check on the times and values themselves (duplicates, gaps, ranges, units, coverage) is done
once, for every layout, by :func:`gigafactory_sim.grid.signals.read_series`.

- ``long``: ``time_utc`` (ISO 8601), an optional ``zone`` column, a value column named with its unit.
- ``electricitymaps``: the hourly CSV of Electricity Maps' data portal (``FR_2023_hourly.csv``): ``Datetime
  (UTC)``, ``Zone Id``, ``Carbon Intensity gCO₂eq/kWh (direct)`` and ``(LCA)`` / ``(Life cycle)``, headers
  matched case- and space-insensitively with ``CO2`` or ``CO₂``. Carbon only.
- ``entsoe``: the ENTSO-E Transparency Platform "Day-ahead Prices" CSV: ``MTU (CET/CEST)`` intervals such as
  ``01.01.2020 00:00 - 01.01.2020 01:00`` (or ``01/01/2025 00:00:00 - ...``), converted from Europe/Brussels
  wall clock to UTC (the repeated autumn hour: a ``(CET)``/``(CEST)`` mark decides, else the first is summer
  time), or ``MTU (UTC)`` taken as is; ``Day-ahead Price [EUR/MWh]`` (or ``(EUR/MWh)``); the zone from a
  ``BZN|FR`` header or an ``Area`` column. Empty, ``-`` and ``n/e`` prices are missing steps. Price only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "FORMATS",
    "FORMAT_KINDS",
    "FormatProblem",
    "ParsedSeries",
    "SeriesRequest",
    "read_table",
]

HEADER_LINE = 1
FIRST_DATA_LINE = 2
BRUSSELS_TZ = "Europe/Brussels"
MISSING_CELLS = frozenset({"", "-", "n/e"})  # what the exports write for a step without a value
MISSING_NOTE = "; empty, '-' and 'n/e' cells are missing steps"


class FormatProblem(Exception):
    """A problem found while parsing: its message, line and the scenario sub-field (``path``, ``zone``...)."""

    def __init__(self, message: str, line: int | None, sub: str = "path") -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.sub = sub


@dataclass(frozen=True)
class SeriesRequest:
    """What the scenario asks of a file: the series kind, zone, value column and carbon intensity basis."""

    kind: str
    zone: str | None
    column: str | None  # the value column named in the scenario, None for the layout's own
    default_column: str  # the long table's value column for this kind, e.g. carbon_g_per_kwh
    unit: str
    hint: str  # what a value in the wrong unit probably means
    intensity: str = "direct"
    zone_aliases: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ParsedSeries:
    """One zone's rows: ``frame`` has columns ``time`` (UTC, ``NaT`` = bad cell) and ``value`` (``NaN`` = not
    numeric), indexed by physical line; the names and hints are used in messages."""

    frame: pd.DataFrame
    time_column: str
    value_column: str
    time_expected: str
    gap_note: str = ""


Parser = Callable[[pd.DataFrame, SeriesRequest], ParsedSeries]


def read_table(path: Path) -> pd.DataFrame:
    """Every cell as a string, indexed by physical line (header = 1); blank lines dropped. Raises pandas' and
    the OS's parse errors."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    raw.index = pd.RangeIndex(FIRST_DATA_LINE, FIRST_DATA_LINE + len(raw))
    if len(raw.columns):
        raw = raw[(raw != "").any(axis=1)]
    return raw


def _norm(header: str) -> str:
    """A header compared case-, space- and subscript-insensitively (``CO₂`` = ``co2``)."""
    return re.sub(r"\s+", "", header.replace("₂", "2")).lower()


def _find(raw: pd.DataFrame, *wanted: str) -> str | None:
    """The first column whose normalised header is one of ``wanted`` (normalised)."""
    keys = {_norm(w) for w in wanted}
    return next((c for c in raw.columns if _norm(str(c)) in keys), None)


def _columns(raw: pd.DataFrame) -> str:
    return ", ".join(str(c) for c in raw.columns)


def _zone_lines(zones: pd.Series) -> str:
    first = zones.groupby(zones, sort=True).apply(lambda s: int(s.index[0]))
    return ", ".join(f"{z} (from line {line})" for z, line in first.items())


def select_zone(raw: pd.DataFrame, zones: pd.Series, req: SeriesRequest, aliases: bool = False) -> pd.DataFrame:
    """The rows of the requested zone (``zones`` holds each row's zone); a file of one zone needs no name.
    With ``aliases`` a zone missing from the file may be read under its alias (DE as the DE-LU bidding zone)."""
    names = sorted(set(zones))
    if req.zone is None:
        if len(names) > 1:
            second = int(zones[zones != zones.iloc[0]].index[0])
            raise FormatProblem(
                f"the file holds several zones ({_zone_lines(zones)}); name one", line=second, sub="zone"
            )
        return raw
    zone = req.zone
    if zone not in names and aliases:
        zone = dict(req.zone_aliases).get(zone, zone)
    if zone not in names:
        first = int(raw.index[0]) if len(raw) else HEADER_LINE
        raise FormatProblem(f"no zone {req.zone!r} in the file; zones: {_zone_lines(zones)}", line=first, sub="zone")
    return raw[(zones == zone).to_numpy()]


def _missing_value_column(req: SeriesRequest, raw: pd.DataFrame, col: str) -> FormatProblem:
    stem = col.split("_")[0]
    near = [str(c) for c in raw.columns if str(c).split("_")[0] == stem]
    msg = f"no {col} column ({req.unit})"
    if near:
        msg += f"; found {', '.join(near)}: wrong unit? {req.hint}"
    return FormatProblem(msg + f"; columns: {_columns(raw)}", line=HEADER_LINE, sub="column")


def parse_long(raw: pd.DataFrame, req: SeriesRequest) -> ParsedSeries:
    """Our long table: ``time_utc``, optional ``zone``, the value column (``carbon_g_per_kwh``...)."""
    col = req.column or req.default_column
    if "time_utc" not in raw.columns:
        raise FormatProblem(f"no time_utc column; columns: {_columns(raw)}", line=HEADER_LINE)
    if col not in raw.columns:
        raise _missing_value_column(req, raw, col)
    if "zone" in raw.columns:
        raw = select_zone(raw, raw["zone"], req)
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime(raw["time_utc"], utc=True, errors="coerce", format="ISO8601"),
            "value": pd.to_numeric(raw[col], errors="coerce"),
        },
        index=raw.index,
    )
    return ParsedSeries(frame, "time_utc", col, "ISO 8601 expected")


EM_TIME = "Datetime (UTC)"
EM_ZONE = "Zone Id"
EM_COLUMNS = {
    "direct": ("Carbon Intensity gCO2eq/kWh (direct)",),
    "lifecycle": ("Carbon Intensity gCO2eq/kWh (LCA)", "Carbon Intensity gCO2eq/kWh (Life cycle)"),
}


def _em_value_column(raw: pd.DataFrame, req: SeriesRequest) -> str:
    wanted = (req.column,) if req.column else EM_COLUMNS[req.intensity]
    col = _find(raw, *wanted)
    if col is None:
        carbon = [str(c) for c in raw.columns if _norm(str(c)).startswith("carbonintensity")]
        sub = "column" if req.column else "intensity"
        raise FormatProblem(
            f"no {' or '.join(repr(w) for w in wanted)} column for intensity {req.intensity}; "
            f"carbon columns: {', '.join(carbon) or 'none'}",
            line=HEADER_LINE,
            sub=sub,
        )
    return col


def _valued(raw: pd.DataFrame, col: str) -> pd.DataFrame:
    """The rows whose value cell is not one of the exports' missing marks (those become gaps)."""
    return raw[~raw[col].str.strip().str.lower().isin(MISSING_CELLS).to_numpy()]


def parse_electricitymaps(raw: pd.DataFrame, req: SeriesRequest) -> ParsedSeries:
    """Electricity Maps' hourly export: ``Datetime (UTC)``, ``Zone Id``, the direct or life-cycle intensity."""
    time_col = _find(raw, EM_TIME)
    if time_col is None:
        raise FormatProblem(
            f"no {EM_TIME!r} column: not an Electricity Maps export? columns: {_columns(raw)}",
            line=HEADER_LINE,
            sub="format",
        )
    col = _em_value_column(raw, req)
    zone_col = _find(raw, EM_ZONE)
    if zone_col is not None:
        raw = select_zone(raw, raw[zone_col].str.strip(), req)
    raw = _valued(raw, col)
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime(raw[time_col], utc=True, errors="coerce", format="ISO8601"),
            "value": pd.to_numeric(raw[col], errors="coerce"),
        },
        index=raw.index,
    )
    return ParsedSeries(frame, str(time_col), str(col), "ISO 8601 expected", gap_note=MISSING_NOTE)


ENTSOE_START = re.compile(
    r"^\s*(?P<d>\d{2})[./](?P<m>\d{2})[./](?P<y>\d{4})\s+(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?"
    r"\s*(?:\((?P<mark>CEST|CET|UTC)\))?\s*(?:-|$)",
    re.IGNORECASE,
)
ENTSOE_TIME_EXPECTED = (
    "expected 'dd.mm.yyyy HH:MM - dd.mm.yyyy HH:MM' or 'dd/mm/yyyy HH:MM:SS - ...'; a local time that does "
    "not exist (the spring DST change) is refused"
)
ENTSOE_TIME_ZONES = {"utc": "UTC", "cet/cest": BRUSSELS_TZ, "cet": BRUSSELS_TZ, "": BRUSSELS_TZ}


def _entsoe_time_column(raw: pd.DataFrame) -> tuple[str, str]:
    """The interval column (``MTU (CET/CEST)``, ``MTU (UTC)``, ``Time (CET/CEST)``...) and its time zone."""
    for c in raw.columns:
        m = re.fullmatch(r"(?:mtu|time)(?:\((?P<tz>[^)]*)\))?", _norm(str(c)))
        if m is not None:
            label = m.group("tz") or ""
            if label not in ENTSOE_TIME_ZONES:
                raise FormatProblem(
                    f"{c!r}: time zone {label.upper()} is not read; export in CET/CEST or UTC",
                    line=HEADER_LINE,
                    sub="format",
                )
            return str(c), ENTSOE_TIME_ZONES[label]
    raise FormatProblem(
        f"no 'MTU (CET/CEST)' or 'MTU (UTC)' column: not an ENTSO-E day-ahead price export? columns: {_columns(raw)}",
        line=HEADER_LINE,
        sub="format",
    )


def _entsoe_price_column(raw: pd.DataFrame, req: SeriesRequest) -> str:
    if req.column:
        col = _find(raw, req.column)
        if col is None:
            raise FormatProblem(f"no {req.column!r} column; columns: {_columns(raw)}", line=HEADER_LINE, sub="column")
        return col
    prices = [str(c) for c in raw.columns if _norm(str(c)).startswith("day-aheadprice")]
    eur = [c for c in prices if "eur/mwh" in _norm(c)]
    if eur:
        return eur[0]
    found = f"; found {', '.join(prices)}: {req.hint}, convert the currency" if prices else ""
    raise FormatProblem(
        f"no 'Day-ahead Price [EUR/MWh]' column{found}; columns: {_columns(raw)}", line=HEADER_LINE, sub="column"
    )


def _entsoe_zone(raw: pd.DataFrame, req: SeriesRequest) -> pd.DataFrame:
    """The zone from an ``Area`` column (``BZN|FR`` per row) or a ``BZN|FR`` header (the older export)."""
    area = _find(raw, "Area")
    if area is not None:
        return select_zone(raw, raw[area].str.strip().str.replace(r"^BZN\|", "", regex=True), req, aliases=True)
    bzn = [str(c) for c in raw.columns if str(c).upper().startswith("BZN|")]
    if len(bzn) == 1:
        zones = pd.Series(bzn[0][4:], index=raw.index)
        return select_zone(raw, zones, req, aliases=True)
    return raw


def _entsoe_main_sequence(raw: pd.DataFrame) -> pd.DataFrame:
    """Only the main day-ahead auction: ``Without Sequence``, else the lowest-numbered sequence."""
    seq = _find(raw, "Sequence")
    if seq is None or raw[seq].nunique() < 2:
        return raw
    labels = sorted(set(raw[seq]))
    if "Without Sequence" in labels:
        main = "Without Sequence"
    else:
        numbered = [(int(m.group()), s) for s in labels if (m := re.search(r"\d+", s)) is not None]
        main = min(numbered)[1] if numbered else labels[0]
    return raw[(raw[seq] == main).to_numpy()]


def _check_currency(raw: pd.DataFrame, req: SeriesRequest) -> None:
    cur = _find(raw, "Currency")
    if cur is None:
        return
    other = raw[cur].str.strip().str.upper()
    bad = raw.index[((other != "") & (other != "EUR")).to_numpy()]
    if len(bad):
        raise FormatProblem(
            f"prices in {raw[cur][bad[0]]}, not EUR: {req.hint}, convert the currency", line=int(bad[0]), sub="column"
        )


def entsoe_start_times(cells: pd.Series, tz: str) -> pd.Series:
    """Each interval's start in UTC (``NaT`` where it does not parse or does not exist in ``tz``).

    A local time that occurs twice (the autumn DST change) is summer time when marked ``(CEST)`` or, unmarked,
    the first time it appears; winter time when marked ``(CET)`` or the second time it appears.
    """
    parts = cells.str.extract(ENTSOE_START)
    text = parts["y"] + "-" + parts["m"] + "-" + parts["d"] + " " + parts["H"] + ":" + parts["M"]
    naive = pd.to_datetime(text + ":" + parts["S"].fillna("00"), format="%Y-%m-%d %H:%M:%S", errors="coerce")
    if tz == "UTC":
        return naive.dt.tz_localize("UTC")
    mark = parts["mark"].str.upper()
    first_seen = ~naive.duplicated(keep="first").to_numpy()
    summer = np.where(mark.isna().to_numpy(), first_seen, (mark == "CEST").to_numpy())
    local = pd.DatetimeIndex(naive).tz_localize(tz, ambiguous=summer, nonexistent="NaT")
    return pd.Series(local.tz_convert("UTC"), index=cells.index)


def parse_entsoe(raw: pd.DataFrame, req: SeriesRequest) -> ParsedSeries:
    """ENTSO-E's "Day-ahead Prices" CSV: MTU intervals in CET/CEST (or UTC) and the EUR/MWh price."""
    time_col, tz = _entsoe_time_column(raw)
    col = _entsoe_price_column(raw, req)
    raw = _entsoe_main_sequence(_entsoe_zone(raw, req))
    _check_currency(raw, req)
    raw = _valued(raw, col)
    frame = pd.DataFrame(
        {"time": entsoe_start_times(raw[time_col], tz), "value": pd.to_numeric(raw[col], errors="coerce")},
        index=raw.index,
    )
    return ParsedSeries(frame, time_col, col, ENTSOE_TIME_EXPECTED, gap_note=MISSING_NOTE)


FORMATS: dict[str, Parser] = {
    "long": parse_long,
    "electricitymaps": parse_electricitymaps,
    "entsoe": parse_entsoe,
}

# The series kinds each layout can hold (None: any).
FORMAT_KINDS: dict[str, frozenset[str] | None] = {
    "long": None,
    "electricitymaps": frozenset({"carbon"}),
    "entsoe": frozenset({"price"}),
}
