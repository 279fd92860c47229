"""Run directories: the writer, the report renderers and the loader."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import gigafactory_sim as g
from gigafactory_sim.report import RunData, load_run, rerender, write_failure, write_run
from gigafactory_sim.report import writer as writer_mod
from gigafactory_sim.report.plots import PLOTS, render_plots
from gigafactory_sim.report.render import render_html, render_markdown
from gigafactory_sim.report.writer import to_json
from gigafactory_sim.result import RunResult

# A training-only run without grid or caps draws every plot but the inference and energy ones (they return None).
CONDITIONAL = ("gpus_by_use", "inference_demand", "power_vs_cap", "energy_budget", "carbon_cost_by_class",
               "interruptions", "goodput_vs_size")
DRAWN = [spec.name for spec in PLOTS if spec.name not in CONDITIONAL]

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
META = {"version": g.__version__, "seed": 1, "scenario": "quickstart", "command": "pytest"}
DATA_FILES = ("summary.json", "timeseries.parquet", "jobs.parquet", "scenario.resolved.yaml", "run.json")
REPORT_FILES = ("report.md", "report.html")


@pytest.fixture(scope="module")
def result() -> RunResult:
    return g.run(g.load_scenario(SCENARIO, overrides=["horizon=6h"]))


@pytest.fixture(scope="module")
def result_no_plots() -> RunResult:
    """A shorter run with ``report.plots: false``, for tests about writing rather than drawing."""
    return g.run(g.load_scenario(SCENARIO, overrides=["horizon=2h", "report.plots=false"]))


@pytest.fixture(scope="module")
def written(result: RunResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run directory written once; tests that change it work on a copy (:func:`copy_of`)."""
    return write_run(result, tmp_path_factory.mktemp("runs") / "quick", meta=META)


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "copy"))


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name)


# --- write_run ----------------------------------------------------------------------------------------------

def test_write_run_writes_every_file(written: Path) -> None:
    for name in (*DATA_FILES, *REPORT_FILES):
        assert (written / name).is_file(), name
    pngs = sorted(p.name for p in (written / "plots").iterdir())
    assert pngs == sorted(f"{name}.png" for name in DRAWN)
    for png in (written / "plots").iterdir():
        assert png.read_bytes().startswith(PNG_MAGIC)
    assert leftovers(written.parent) == []


def test_tables_and_summary_round_trip(result: RunResult, written: Path) -> None:
    pd.testing.assert_frame_equal(pd.read_parquet(written / "timeseries.parquet"), result.timeseries)
    pd.testing.assert_frame_equal(pd.read_parquet(written / "jobs.parquet"), result.jobs)
    assert json.loads((written / "summary.json").read_text()) == result.summary
    assert list(json.loads((written / "summary.json").read_text())) == list(result.summary)  # order kept
    scenario = yaml.safe_load((written / "scenario.resolved.yaml").read_text())
    assert scenario == result.scenario.model_dump(mode="json")
    assert scenario["horizon"] == "6h"


def test_run_json_is_meta_plus_completed(written: Path) -> None:
    assert json.loads((written / "run.json").read_text()) == {**META, "status": "completed"}


def test_html_is_self_contained(written: Path) -> None:
    page = (written / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(DRAWN)
    assert all(base64.b64decode(data).startswith(PNG_MAGIC) for data in images)
    assert re.search(r"https?://", page) is None
    assert "<link" not in page and "<script" not in page
    # Headline KPIs come before the plots, which come before the tables.
    assert page.index("Allocated utilisation") < page.index("<img") < page.index("<table")


def test_markdown_links_the_plot_files(written: Path) -> None:
    md = (written / "report.md").read_text()
    for name in DRAWN:
        assert f"(plots/{name}.png)" in md
    assert "| GPUs | 512 |" in md


def test_write_run_replaces_an_empty_directory(result_no_plots: RunResult, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    assert write_run(result_no_plots, out, meta=META) == out
    assert (out / "run.json").is_file()
    assert leftovers(tmp_path) == []


def test_write_run_refuses_a_non_empty_directory(result: RunResult, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        write_run(result, out, meta=META)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert leftovers(tmp_path) == []


def test_crash_mid_write_leaves_nothing_behind(result: RunResult, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    written_before_crash: list[str] = []
    real = writer_mod._write_parquet

    def crash_on_jobs(frame: pd.DataFrame, path: Path) -> None:
        if path.name == "jobs.parquet":
            raise OSError("disk full")
        real(frame, path)
        written_before_crash.append(path.name)

    monkeypatch.setattr(writer_mod, "_write_parquet", crash_on_jobs)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="disk full"):
        write_run(result, out, meta=META)
    assert written_before_crash == ["timeseries.parquet"]  # the crash really was mid-write
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_plots_off_writes_no_plots(result_no_plots: RunResult, tmp_path: Path) -> None:
    out = write_run(result_no_plots, tmp_path / "run", meta=META)
    assert not (out / "plots").exists()
    assert "data:image/png" not in (out / "report.html").read_text()
    assert "![" not in (out / "report.md").read_text()


# --- write_failure ------------------------------------------------------------------------------------------

def test_write_failure_records_the_error(tmp_path: Path) -> None:
    out = write_failure(tmp_path / "a" / "failed", META, "Traceback: ZeroDivisionError")
    assert [p.name for p in out.iterdir()] == ["run.json"]
    run = json.loads((out / "run.json").read_text())
    assert run == {**META, "status": "failed", "error": "Traceback: ZeroDivisionError"}
    with pytest.raises(ValueError, match=r"not a completed run.*failed.*ZeroDivisionError"):
        load_run(out)


def test_write_failure_never_overwrites_a_run(written: Path, tmp_path: Path) -> None:
    run_dir = copy_of(written, tmp_path)
    with pytest.raises(FileExistsError):
        write_failure(run_dir, META, "boom")
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"


# --- load_run and rerender ----------------------------------------------------------------------------------

def test_load_run_round_trip(result: RunResult, written: Path) -> None:
    run = g.load_run(str(written))
    assert isinstance(run, RunData)
    assert run.path == written
    assert run.summary == result.summary
    assert run.meta == {**META, "status": "completed"}
    pd.testing.assert_frame_equal(run.timeseries, result.timeseries)
    pd.testing.assert_frame_equal(run.jobs, result.jobs)
    assert yaml.safe_load(run.scenario_yaml) == result.scenario.model_dump(mode="json")


def test_load_run_names_what_is_missing(written: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no run directory"):
        load_run(tmp_path / "nowhere")
    run_dir = copy_of(written, tmp_path)
    (run_dir / "jobs.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"jobs\.parquet"):
        load_run(run_dir)
    (run_dir / "run.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"run\.json"):
        load_run(run_dir)


def test_rerender_rebuilds_the_report(written: Path, tmp_path: Path) -> None:
    run_dir = copy_of(written, tmp_path)
    original_html = (run_dir / "report.html").read_bytes()
    (run_dir / "report.html").unlink()
    (run_dir / "report.md").write_text("stale")
    (run_dir / "plots" / "power.png").unlink()
    rerender(run_dir)
    assert (run_dir / "report.html").read_bytes() == original_html  # same data -> same page, plots and all
    assert (run_dir / "report.md").read_text() == (written / "report.md").read_text()
    assert (run_dir / "plots" / "power.png").read_bytes().startswith(PNG_MAGIC)
    assert leftovers(run_dir) == [] and leftovers(run_dir / "plots") == []


# --- plots and rendering on odd inputs ----------------------------------------------------------------------

def test_plots_survive_degenerate_tables(result: RunResult) -> None:
    pyplot_loaded = "matplotlib.pyplot" in sys.modules
    never_started = result.jobs.assign(start_s=np.nan, end_s=np.nan, wait_s=np.nan, state="queued")
    zero_waits = result.jobs.assign(wait_s=0.0)
    cases = [
        ({}, pd.DataFrame(), pd.DataFrame()),
        (result.summary, result.timeseries.iloc[:0], result.jobs.iloc[:0]),
        (result.summary, result.timeseries.iloc[:1], never_started),
        (result.summary, result.timeseries, zero_waits),
    ]
    for summary, timeseries, jobs in cases:
        pngs = render_plots(summary, timeseries, jobs)
        assert list(pngs) == DRAWN
        assert all(png.startswith(PNG_MAGIC) for png in pngs.values())
        assert render_html(summary, timeseries, jobs, pngs).endswith("</html>\n")
        assert render_markdown(summary, timeseries, jobs, {}).startswith("# Run report")
    if not pyplot_loaded:
        assert "matplotlib.pyplot" not in sys.modules


def test_unknown_summary_sections_are_rendered(result: RunResult) -> None:
    summary = {**result.summary, "carbon": {"intensity_g_per_kwh": 52.5, "by_cluster": {"h200": {"t": 1.25}}},
               "notes": ["a|b"]}
    page = render_html(summary, result.timeseries, result.jobs, {})
    md = render_markdown(summary, result.timeseries, result.jobs, {})
    for text in (page, md):
        assert "carbon" in text and "intensity_g_per_kwh" in text and "52.5" in text
        assert "by_cluster.h200.t" in text and "1.25" in text
    assert "a\\|b" in md  # a pipe in a value cannot break the Markdown table


def test_summary_json_is_strict(result_no_plots: RunResult, tmp_path: Path) -> None:
    text = to_json({"nan": float("nan"), "inf": np.float64(np.inf), "n": np.int64(3), "ok": 0.5})
    assert json.loads(text) == {"nan": None, "inf": None, "n": 3, "ok": 0.5}
    odd_summary = {**result_no_plots.summary, "extra": {"x": float("nan")}}
    odd = dataclasses.replace(result_no_plots, summary=odd_summary)
    out = write_run(odd, tmp_path / "run", meta=META)
    stored = (out / "summary.json").read_text()
    assert "NaN" not in stored
    assert json.loads(stored)["extra"] == {"x": None}
