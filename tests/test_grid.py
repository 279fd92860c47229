"""Grid signals: CSV validation (gaps, duplicates, units, coverage), looping, and the shipped extracts."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gigafactory_sim.errors import ScenarioError
from gigafactory_sim.grid import GridConfig, Renewables, SeriesSource, Signal, load_grid, load_signal
from gigafactory_sim.grid.signals import loop_offset_s

DATA = Path(__file__).resolve().parents[1] / "gigafactory_sim" / "data" / "grid"
START_2020 = datetime(2020, 6, 1, tzinfo=UTC)


def write_series(
    path: Path, times: list[str], values: list[float], column: str = "carbon_g_per_kwh", zone: str | None = "FR"
) -> Path:
    df = pd.DataFrame({"time_utc": times, column: values})
    if zone is not None:
        df.insert(1, "zone", zone)
    df.to_csv(path, index=False)
    return path


def hours(start: str, n: int) -> list[str]:
    return [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in pd.date_range(start, periods=n, freq="h", tz="UTC")]


def load(
    path: Path,
    kind: str = "carbon",
    horizon_s: float = 3 * 3600.0,
    loop: bool = False,
    start: datetime = START_2020,
    zone: str | None = "FR",
) -> Signal:
    return load_signal(
        kind,
        path,
        zone=zone,
        column=None,
        year=None,
        start=start,
        horizon_s=horizon_s,
        loop_year=loop,
        field=f"grid.{kind}",
    )


def test_signal_at_and_integral() -> None:
    s = Signal("x", "u", np.array([-10.0, 100.0, 200.0]), np.array([1.0, 2.0, 3.0]))
    assert s.at(0.0) == 1.0 and s.at(100.0) == 2.0 and s.at(199.9) == 2.0 and s.at(1e9) == 3.0
    assert s.integral(0.0, 250.0) == pytest.approx(100 * 1 + 100 * 2 + 50 * 3)
    assert list(s.breakpoints(150.0)) == [100.0]


def test_valid_series_is_piecewise_constant(tmp_path: Path) -> None:
    p = write_series(tmp_path / "c.csv", hours("2020-06-01T00:00Z", 4), [10, 20, 30, 40])
    s = load(p, start=datetime(2020, 6, 1, 0, 30, tzinfo=UTC))
    assert s.at(0.0) == 10 and s.at(1800.0) == 20 and s.at(3 * 3600.0 - 1) == 40
    assert list(s.breakpoints(3 * 3600.0)) == [1800.0, 5400.0, 9000.0]


@pytest.mark.parametrize(
    ("times", "values", "message"),
    [
        (hours("2020-06-01T00:00Z", 2) + hours("2020-06-01T03:00Z", 2), [1, 2, 3, 4], "gap"),
        (hours("2020-06-01T00:00Z", 3) + hours("2020-06-01T02:00Z", 1), [1, 2, 3, 4], "duplicate times at line(s) 5"),
        (hours("2020-06-01T00:00Z", 4), [1, -2, 3, 4], "below 0"),
        (hours("2020-06-01T00:00Z", 4), [0.3, 0.2, 0.3, 0.4], "wrong unit"),
        (hours("2020-06-01T00:00Z", 4), [1, 2, 3e5, 4], "above 2000"),
        (["2020-06-01T00:00Z", "yesterday", "2020-06-01T02:00Z", "2020-06-01T03:00Z"], [1, 2, 3, 4], "bad time_utc"),
        (hours("2020-06-01T01:00Z", 4), [1, 2, 3, 4], "not the simulated"),
        (hours("2020-06-01T00:00Z", 2), [1, 2], "not the simulated"),
    ],
)
def test_bad_series_are_reported(tmp_path: Path, times: list[str], values: list[float], message: str) -> None:
    p = write_series(tmp_path / "c.csv", times, values)
    with pytest.raises(ScenarioError) as exc:
        load(p)
    assert message in str(exc.value)
    assert str(p) in str(exc.value) and "grid.carbon" in str(exc.value)


def test_wrong_unit_column_and_coarse_steps(tmp_path: Path) -> None:
    p = write_series(tmp_path / "c.csv", hours("2020-06-01T00:00Z", 4), [0.1] * 4, column="carbon_kg_per_kwh")
    with pytest.raises(ScenarioError, match="found carbon_kg_per_kwh: wrong unit"):
        load(p)
    two_h = pd.date_range("2020-06-01", periods=4, freq="2h", tz="UTC")
    times = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in two_h]
    p = write_series(tmp_path / "d.csv", times, [1, 2, 3, 4])
    with pytest.raises(ScenarioError, match="hourly or finer"):
        load(p)
    p = write_series(tmp_path / "e.csv", hours("2020-06-01T00:00Z", 4), [0.1, 0.2, 50, 0.3], column="solar_cf")
    with pytest.raises(ScenarioError, match="percent"):
        load(p, kind="solar")


def test_unknown_zone_lists_zones(tmp_path: Path) -> None:
    p = write_series(tmp_path / "c.csv", hours("2020-06-01T00:00Z", 4), [1, 2, 3, 4])
    with pytest.raises(ScenarioError, match=r"no zone 'XX'.*zones: FR"):
        load(p, zone="XX")


def test_finer_than_hourly_and_gzip(tmp_path: Path) -> None:
    times = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in pd.date_range("2020-06-01", periods=12, freq="15min", tz="UTC")]
    p = write_series(tmp_path / "c.csv", times, list(range(1, 13)))
    gz = tmp_path / "c.csv.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    s = load(gz, horizon_s=3 * 3600.0)
    assert s.at(900.0) == 2 and len(s.breakpoints(3 * 3600.0)) == 11


def test_loop_year_needs_one_year_and_aligns_weekdays(tmp_path: Path) -> None:
    p = write_series(tmp_path / "c.csv", hours("2020-06-01T00:00Z", 4), [1, 2, 3, 4])
    with pytest.raises(ScenarioError, match="one year"):
        load(p, loop=True)
    # 2024-06-03 (a Monday) maps to 2020-06-01 (a Monday): whole weeks back.
    start = datetime(2024, 6, 3, tzinfo=UTC)
    off = loop_offset_s(start, datetime(2020, 1, 1, tzinfo=UTC).timestamp())
    assert datetime.fromtimestamp(start.timestamp() - off, UTC) == datetime(2020, 6, 1, tzinfo=UTC)
    s = load(DATA / "carbon_2020.csv.gz", start=start, horizon_s=400 * 86400.0, loop=True)
    raw = pd.read_csv(DATA / "carbon_2020.csv.gz")
    fr = raw[raw.zone == "FR"].reset_index(drop=True)
    i0 = int(fr.index[fr.time_utc == "2020-06-01T00:00:00Z"][0])
    n = len(fr)
    for k in (0, 1, 5000, n - i0, n - i0 + 3):  # across the wrap back to January
        assert s.at(k * 3600.0) == fr.carbon_g_per_kwh[(i0 + k) % n]


def test_shipped_extracts_cover_2020_and_match_published_means() -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    year_s = 366 * 86400.0
    cfg = GridConfig(carbon=SeriesSource(), price=SeriesSource(), renewables=Renewables(solar_mw=1.0, wind_mw=1.0))
    for zone, carbon_mean, price_mean in (("FR", 54.3, 32.3), ("DE", 384.3, 30.6)):
        sig = load_grid(cfg, zone, start, year_s, DATA)
        assert sig.carbon is not None and sig.price is not None
        assert sig.carbon.integral(0, year_s) / year_s == pytest.approx(carbon_mean, abs=0.05)
        assert sig.price.integral(0, year_s) / year_s == pytest.approx(price_mean, abs=0.05)
        assert sig.solar is not None and 0.05 < float(sig.solar.values.mean()) < 0.2
    assert "ENTSO-E" in (DATA / "SOURCE.md").read_text()


def test_every_bad_series_is_reported_at_once() -> None:
    cfg = GridConfig(carbon=SeriesSource(zone="XX"), price=SeriesSource())
    with pytest.raises(ScenarioError) as exc:
        load_grid(cfg, "FR", datetime(2024, 6, 1, tzinfo=UTC), 86400.0, DATA)
    fields = [p.field for p in exc.value.problems]
    assert fields == ["grid.carbon.zone", "grid.price.path"]
