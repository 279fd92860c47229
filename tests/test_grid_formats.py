"""Grid series read from the exports users hold: Electricity Maps' hourly CSV and ENTSO-E's day-ahead prices."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from gigafactory_sim.api import run
from gigafactory_sim.config.loader import parse_scenario_text
from gigafactory_sim.errors import InputProblem, ScenarioError
from gigafactory_sim.grid import GridConfig, SeriesSource, load_signal, read_series
from gigafactory_sim.grid.formats import FORMATS

SAMPLES = Path(__file__).resolve().parent / "data" / "grid"
EM_FR = SAMPLES / "FR_2020_hourly.csv"
ENTSOE_FR = SAMPLES / "Day-ahead Prices_FR_202010240000-202010270000.csv"
SHIPPED = Path(__file__).resolve().parents[1] / "gigafactory_sim" / "data" / "grid"
HOUR_S = 3600.0


def shipped(kind: str, column: str, zone: str = "FR") -> pd.Series:
    df = pd.read_csv(SHIPPED / f"{kind}_2020.csv.gz")
    df = df[df.zone == zone]
    return pd.Series(df[column].to_numpy(), index=pd.to_datetime(df.time_utc, utc=True))


def unix(iso: str) -> float:
    return pd.Timestamp(iso).timestamp()


def read(path: Path, kind: str, fmt: str, zone: str | None = "FR", **kw: object) -> tuple[np.ndarray, np.ndarray]:
    times, values, _ = read_series(path, kind, zone, None, None, f"grid.{kind}", fmt=fmt, **kw)  # type: ignore[arg-type]
    return times, values


def problem(path: Path, kind: str, fmt: str, zone: str | None = "FR", **kw: object) -> InputProblem:
    with pytest.raises(ScenarioError) as exc:
        read(path, kind, fmt, zone, **kw)
    assert len(exc.value.problems) == 1
    return exc.value.problems[0]


def rewrite(src: Path, dst: Path, *replace: tuple[str, str]) -> Path:
    text = src.read_text(encoding="utf-8")
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new)
    dst.write_text(text, encoding="utf-8")
    return dst


def test_registry_names_the_three_layouts() -> None:
    assert set(FORMATS) == {"long", "electricitymaps", "entsoe"}


# -- Electricity Maps ------------------------------------------------------------------------------------------


def test_electricitymaps_direct_is_the_utc_series() -> None:
    times, values = read(EM_FR, "carbon", "electricitymaps")
    assert len(times) == 72
    assert times[0] == unix("2020-01-01T00:00Z") and times[-1] == unix("2020-01-03T23:00Z")
    assert np.all(np.diff(times) == HOUR_S)
    assert values[0] == 60.66 and values[1] == 50.75  # the rows of 2020-01-01 00:00 and 01:00 UTC
    long = shipped("carbon", "carbon_g_per_kwh")
    expected = long[pd.to_datetime(times, unit="s", utc=True)].to_numpy()
    np.testing.assert_array_equal(values, expected)


def test_electricitymaps_lifecycle_picks_the_lca_column() -> None:
    _, direct = read(EM_FR, "carbon", "electricitymaps")
    _, lca = read(EM_FR, "carbon", "electricitymaps", intensity="lifecycle")
    assert lca[0] == 78.86
    np.testing.assert_allclose(lca, direct * 1.3, rtol=0, atol=0.0051)
    assert np.all(lca > direct)


def test_electricitymaps_newer_header_spellings(tmp_path: Path) -> None:
    newer = rewrite(
        EM_FR,
        tmp_path / "FR_2024_hourly.csv",
        ("Zone Name,Zone Id", "Zone name,Zone id"),
        ("Carbon Intensity gCO₂eq/kWh (direct)", "Carbon intensity gCO2eq/kWh (direct)"),
        ("Carbon Intensity gCO₂eq/kWh (LCA)", "Carbon intensity gCO₂eq/kWh (Life cycle)"),
        (
            "Low Carbon Percentage,Renewable Percentage",
            "Carbon-free energy percentage (CFE%),Renewable energy percentage (RE%)",
        ),
    )
    for intensity in ("direct", "lifecycle"):
        assert np.array_equal(
            read(newer, "carbon", "electricitymaps", intensity=intensity)[1],
            read(EM_FR, "carbon", "electricitymaps", intensity=intensity)[1],
        )


def test_electricitymaps_zone_selection(tmp_path: Path) -> None:
    text = EM_FR.read_text(encoding="utf-8")
    header, *rows = text.splitlines()
    de_rows = [r.replace(",France,France,FR,", ",Germany,Germany,DE,").replace(",60.66,", ",400.00,") for r in rows]
    both = tmp_path / "zones.csv"
    both.write_text("\n".join([header, *rows, *de_rows]) + "\n", encoding="utf-8")
    assert read(both, "carbon", "electricitymaps", zone="DE")[1][0] == 400.0
    assert read(both, "carbon", "electricitymaps", zone="FR")[1][0] == 60.66
    p = problem(both, "carbon", "electricitymaps", zone="DK-DK1")
    assert (p.file, p.line, p.field) == (str(both), 2, "grid.carbon.zone")
    assert "FR (from line 2)" in p.message and "DE (from line 74)" in p.message
    p = problem(both, "carbon", "electricitymaps", zone=None)
    assert (p.line, p.field) == (74, "grid.carbon.zone") and "several zones" in p.message
    # a file of one zone needs no zone named
    assert read(EM_FR, "carbon", "electricitymaps", zone=None)[1][0] == 60.66


# -- ENTSO-E ---------------------------------------------------------------------------------------------------


def test_entsoe_dst_day_has_25_distinct_utc_hours_with_the_long_table_values() -> None:
    times, values = read(ENTSOE_FR, "price", "entsoe")
    assert len(times) == 73 and np.all(np.diff(times) == HOUR_S)
    assert times[0] == unix("2020-10-23T22:00Z")  # 24.10.2020 00:00 CEST
    assert times[-1] == unix("2020-10-26T22:00Z")  # 26.10.2020 23:00 CET
    dst_day = (times >= unix("2020-10-24T22:00Z")) & (times < unix("2020-10-25T23:00Z"))
    assert dst_day.sum() == 25 and len(set(times[dst_day])) == 25
    # the two local 02:00 rows (lines 28 and 29): summer time first (00:00Z), then winter time (01:00Z)
    assert values[times == unix("2020-10-25T00:00Z")][0] == 0.12
    assert values[times == unix("2020-10-25T01:00Z")][0] == 35.73
    assert values[times == unix("2020-10-25T02:00Z")][0] == -0.10  # 03:00 CET
    long = shipped("price", "price_eur_per_mwh")
    np.testing.assert_array_equal(values, long[pd.to_datetime(times, unit="s", utc=True)].to_numpy())


def test_entsoe_marked_repeated_hour_follows_the_marks(tmp_path: Path) -> None:
    marked = rewrite(
        ENTSOE_FR,
        tmp_path / "marked.csv",
        (
            '"25.10.2020 02:00 - 25.10.2020 03:00","0.12","EUR",""\n'
            '"25.10.2020 02:00 - 25.10.2020 03:00","35.73","EUR",""',
            '"25.10.2020 02:00 (CET) - 25.10.2020 03:00 (CET)","35.73","EUR",""\n'
            '"25.10.2020 02:00 (CEST) - 25.10.2020 02:00 (CET)","0.12","EUR",""',
        ),
    )
    times, values = read(marked, "price", "entsoe")
    assert values[times == unix("2020-10-25T00:00Z")][0] == 0.12
    assert values[times == unix("2020-10-25T01:00Z")][0] == 35.73


def _new_export(path: Path, tz_header: str, starts: pd.DatetimeIndex, step: pd.Timedelta) -> Path:
    fmt = "%d/%m/%Y %H:%M:%S"
    header = f'"MTU ({tz_header})","Area","Sequence","Day-ahead Price (EUR/MWh)"'
    rows = [header + f',"Intraday Period ({tz_header})","Intraday Price (EUR/MWh)"']
    for i, t in enumerate(starts):
        mtu = f"{t.strftime(fmt)} - {(t + step).strftime(fmt)}"
        rows.append(f'"{mtu}","BZN|FR","Without Sequence","{10 + i}.5","",""')
        rows.append(f'"{mtu}","BZN|DE-LU","Without Sequence","{200 + i}","",""')
        rows.append(f'"{mtu}","BZN|FR","Sequence 2","{900 + i}","",""')
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_entsoe_newer_export_utc_quarter_hours_area_and_sequence(tmp_path: Path) -> None:
    starts = pd.date_range("2025-01-01T00:00", periods=8, freq="15min")
    p = _new_export(tmp_path / "GUI_ENERGY_PRICES.csv", "UTC", starts, pd.Timedelta(minutes=15))
    times, values = read(p, "price", "entsoe")
    assert times[0] == unix("2025-01-01T00:00Z") and np.all(np.diff(times) == 900.0)
    assert list(values[:3]) == [10.5, 11.5, 12.5]  # BZN|FR, main auction only
    _, de = read(p, "price", "entsoe", zone="DE")  # DE reads the DE-LU bidding zone
    assert de[0] == 200.0


def test_entsoe_newer_export_in_cet_cest(tmp_path: Path) -> None:
    local = pd.date_range("2025-03-30T00:00", periods=5, freq="h", tz="Europe/Brussels")  # spring DST day
    p = _new_export(tmp_path / "spring.csv", "CET/CEST", local.tz_localize(None), pd.Timedelta(hours=1))
    times, _ = read(p, "price", "entsoe")
    expected = [unix(t) for t in ("2025-03-29T23:00Z", "2025-03-30T00:00Z", "2025-03-30T01:00Z", "2025-03-30T02:00Z")]
    assert list(times[:4]) == expected  # 00:00, 01:00 CET; 03:00, 04:00 CEST: no local 02:00


# -- errors: file, line, field ---------------------------------------------------------------------------------


def test_format_for_another_kind_is_refused() -> None:
    p = problem(ENTSOE_FR, "carbon", "entsoe")
    assert (p.file, p.line, p.field) == (str(ENTSOE_FR), 1, "grid.carbon.format")
    assert "price" in p.message
    p = problem(EM_FR, "price", "electricitymaps")
    assert (p.line, p.field) == (1, "grid.price.format")
    p = problem(EM_FR, "temperature", "electricitymaps")
    assert p.field == "grid.temperature.format"


def test_missing_columns_name_the_header_line(tmp_path: Path) -> None:
    no_lca = rewrite(EM_FR, tmp_path / "no_lca.csv", ("Carbon Intensity gCO₂eq/kWh (LCA)", "Something else"))
    p = problem(no_lca, "carbon", "electricitymaps", intensity="lifecycle")
    assert (p.file, p.line, p.field) == (str(no_lca), 1, "grid.carbon.intensity")
    assert "Carbon Intensity gCO₂eq/kWh (direct)" in p.message
    p = problem(ENTSOE_FR, "carbon", "electricitymaps")  # not an Electricity Maps file at all
    assert (p.line, p.field) == (1, "grid.carbon.format") and "Datetime (UTC)" in p.message
    gbp = rewrite(ENTSOE_FR, tmp_path / "gbp.csv", ("Day-ahead Price [EUR/MWh]", "Day-ahead Price [GBP/MWh]"))
    p = problem(gbp, "price", "entsoe")
    assert (p.line, p.field) == (1, "grid.price.column") and "GBP" in p.message
    no_mtu = rewrite(ENTSOE_FR, tmp_path / "no_mtu.csv", ("MTU (CET/CEST)", "When"))
    p = problem(no_mtu, "price", "entsoe")
    assert (p.line, p.field) == (1, "grid.price.format")


def test_unknown_zone_in_a_one_zone_export() -> None:
    p = problem(ENTSOE_FR, "price", "entsoe", zone="NL")
    assert (p.file, p.line, p.field) == (str(ENTSOE_FR), 2, "grid.price.zone") and "FR" in p.message
    p = problem(EM_FR, "carbon", "electricitymaps", zone="DE")
    assert (p.line, p.field) == (2, "grid.carbon.zone")


@pytest.mark.parametrize("cell", ["", "-", "n/e"])
def test_missing_entsoe_price_is_a_gap_at_its_line(tmp_path: Path, cell: str) -> None:
    # physical line 10 holds 24.10.2020 08:00; without a price the series jumps from line 9 to line 11
    gap = rewrite(ENTSOE_FR, tmp_path / "gap.csv", ('"24.10.2020 08:00 - 24.10.2020 09:00","', "@"))
    text = gap.read_text(encoding="utf-8").splitlines()
    assert text[9].startswith("@")
    text[9] = f'"24.10.2020 08:00 - 24.10.2020 09:00","{cell}","EUR",""'
    gap.write_text("\n".join(text) + "\n", encoding="utf-8")
    p = problem(gap, "price", "entsoe")
    assert (p.file, p.line, p.field) == (str(gap), 11, "grid.price.path")
    assert "gap" in p.message and "n/e" in p.message


def test_bad_time_cells_name_their_line(tmp_path: Path) -> None:
    bad = rewrite(EM_FR, tmp_path / "bad.csv", ("2020-01-01 03:00:00", "2020-01-01 3 o'clock"))
    p = problem(bad, "carbon", "electricitymaps")
    assert (p.line, p.field) == (5, "grid.carbon.path") and "Datetime (UTC)" in p.message
    bad = rewrite(ENTSOE_FR, tmp_path / "bad.csv", ('"24.10.2020 05:00 - ', '"24-10-2020 05:00 - '))
    p = problem(bad, "price", "entsoe")
    assert (p.line, p.field) == (7, "grid.price.path") and "MTU (CET/CEST)" in p.message
    spring = tmp_path / "spring.csv"
    spring.write_text(
        '"MTU (CET/CEST)","Day-ahead Price [EUR/MWh]","Currency","BZN|FR"\n'
        '"29.03.2020 01:00 - 29.03.2020 03:00","10","EUR",""\n'
        '"29.03.2020 02:00 - 29.03.2020 03:00","11","EUR",""\n'
        '"29.03.2020 03:00 - 29.03.2020 04:00","12","EUR",""\n',
        encoding="utf-8",
    )
    p = problem(spring, "price", "entsoe")
    assert p.line == 3 and "does not exist" in p.message


def test_duplicate_and_out_of_range_rows_are_checked_like_the_long_table(tmp_path: Path) -> None:
    lines = EM_FR.read_text(encoding="utf-8").splitlines()
    dup = tmp_path / "dup.csv"
    dup.write_text("\n".join([*lines[:6], lines[3], *lines[6:]]) + "\n", encoding="utf-8")
    p = problem(dup, "carbon", "electricitymaps")
    assert (p.line, p.field) == (7, "grid.carbon.path") and "duplicate times at line(s) 7" in p.message
    neg = rewrite(EM_FR, tmp_path / "neg.csv", (",60.66,", ",-60.66,"))
    p = problem(neg, "carbon", "electricitymaps")
    assert p.line == 2 and "below 0" in p.message


def test_coverage_names_the_last_line() -> None:
    with pytest.raises(ScenarioError) as exc:
        load_signal(
            "carbon",
            EM_FR,
            zone="FR",
            column=None,
            year=None,
            start=datetime(2020, 1, 3, tzinfo=UTC),
            horizon_s=2 * 86400.0,
            loop_year=False,
            field="grid.carbon",
            fmt="electricitymaps",
        )
    p = exc.value.problems[0]
    assert (p.line, p.field) == (73, "grid.carbon.path") and "not the simulated" in p.message


def test_long_table_lines_are_physical_with_blank_lines(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text(
        "time_utc,zone,carbon_g_per_kwh\n2020-06-01T00:00Z,FR,10\n\n2020-06-01T01:00Z,FR,20\nnever,FR,30\n",
        encoding="utf-8",
    )
    pr = problem(p, "carbon", "long")
    assert pr.line == 5 and "bad time_utc at line(s) 5" in pr.message


# -- the scenario ----------------------------------------------------------------------------------------------


def test_config_refuses_mismatched_layouts() -> None:
    with pytest.raises(ValidationError, match="holds price series, not carbon"):
        GridConfig(carbon=SeriesSource(path="x.csv", format="entsoe"))
    with pytest.raises(ValidationError, match="holds carbon series, not price"):
        GridConfig(price=SeriesSource(path="x.csv", format="electricitymaps"))
    with pytest.raises(ValidationError, match="Electricity Maps"):
        SeriesSource(path="x.csv", intensity="lifecycle")
    with pytest.raises(ValidationError, match="give its path"):
        SeriesSource(format="entsoe")
    assert SeriesSource(path="x.csv", format="electricitymaps", intensity="lifecycle").intensity == "lifecycle"


SCENARIO = """\
name: em-export
seed: 1
start: {start}
horizon: 1d
facility:
  name: hall
  country: FR
  pue: 1.2
  clusters:
    - name: h200
      gpu: H200-SXM
      nodes: 4
      gpus_per_node: 8
workload:
  training:
    - kind: synthetic
      name: research
      arrivals: {{kind: poisson, rate_per_hour: 6}}
      classes:
        - {{name: small, share: 1.0, sizes: {{kind: choice, gpus: [1, 2, 4, 8]}},
           duration: {{kind: lognormal, median: 30m, sigma: 1.0, max: 6h}}}}
scheduler: {{kind: easy_backfill, lookahead: 100}}
report: {{interval: 15m, plots: false}}
grid:
{grid}
"""


def _run_carbon(tmp_path: Path, grid: str, start: str = "2020-01-01T00:00:00Z") -> dict[str, object]:
    sc = parse_scenario_text(SCENARIO.format(start=start, grid=grid), str(tmp_path / "s.yaml"), base_dir=tmp_path)
    carbon = run(sc).summary["carbon"]
    assert isinstance(carbon, dict)
    return carbon


def test_end_to_end_electricitymaps_equals_the_long_table(tmp_path: Path) -> None:
    times, values = read(EM_FR, "carbon", "electricitymaps")
    long = pd.DataFrame(
        {
            "time_utc": pd.to_datetime(times, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "zone": "FR",
            "carbon_g_per_kwh": values,
        }
    )
    long.to_csv(tmp_path / "fr_long.csv", index=False)
    from_export = _run_carbon(tmp_path, f"  carbon: {{path: '{EM_FR}', format: electricitymaps}}")
    from_long = _run_carbon(tmp_path, "  carbon: {path: fr_long.csv}")
    assert from_export == from_long
    total = from_export["total_t"]
    assert isinstance(total, float) and total > 0
    lifecycle = _run_carbon(tmp_path, f"  carbon: {{path: '{EM_FR}', format: electricitymaps, intensity: lifecycle}}")
    assert lifecycle["total_t"] == pytest.approx(1.3 * total, rel=0.01)


def test_scenario_with_a_price_export_as_carbon_names_the_field_and_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario_text(
            SCENARIO.format(start="2020-10-24T00:00:00Z", grid=f"  carbon: {{path: '{ENTSOE_FR}', format: entsoe}}"),
            "s.yaml",
            base_dir=tmp_path,
        )
    p = exc.value.problems[0]
    assert p.file == "s.yaml" and p.field.startswith("grid.carbon") and p.line == 25
    assert "holds price series" in p.message
