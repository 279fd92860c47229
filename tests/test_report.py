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
from gigafactory_sim.report import RunData, load_run, plot_style, rerender, write_failure, write_run
from gigafactory_sim.report import writer as writer_mod
from gigafactory_sim.report.format import format_value, humanise
from gigafactory_sim.report.plot_style import _span_text, warmup_s
from gigafactory_sim.report.plots import (
    PLOTS,
    _energy_split,
    _wait_groups,
    power_plot,
    queue_plot,
    render_plots,
    utilisation_plot,
)
from gigafactory_sim.report.render import render_html, render_markdown
from gigafactory_sim.report.sections import build_sections
from gigafactory_sim.report.story import Card, story
from gigafactory_sim.report.tables import flatten
from gigafactory_sim.report.writer import to_json
from gigafactory_sim.result import RunResult

# A training-only run without grid or caps draws every plot but the inference and energy ones (they return None).
CONDITIONAL = (
    "gpus_by_use",
    "inference_demand",
    "power_vs_cap",
    "energy_budget",
    "carbon_cost_by_class",
    "interruptions",
    "goodput_vs_size",
)
DRAWN = [spec.name for spec in PLOTS if spec.name not in CONDITIONAL]

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
META = {"version": g.__version__, "seed": 1, "scenario": "quickstart", "command": "pytest"}
DATA_FILES = (
    "summary.json",
    "timeseries.parquet",
    "jobs.parquet",
    "scenario.resolved.yaml",
    "eed_report.json",  # the EU data-centre report (README, EED): data, written with the run
    "eed_report.csv",
    "run.json",
)
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
    # The story of the run comes first, then the feature sections with their tables and plots.
    assert page.index('id="story"') < page.index("GPUs allocated") < page.index("<table") < page.index("<img")


def test_markdown_links_the_plot_files(written: Path) -> None:
    md = (written / "report.md").read_text()
    for name in DRAWN:
        assert f"(plots/{name}.png)" in md
    assert "| GPUs | 512 |" in md
    assert md.index("## The run at a glance") < md.index("## GPUs and jobs") < md.index("## Power and energy")


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


def test_crash_mid_write_leaves_nothing_behind(
    result: RunResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written_before_crash: list[str] = []
    real = writer_mod.write_parquet

    def crash_on_jobs(frame: pd.DataFrame, path: Path) -> None:
        if path.name == "jobs.parquet":
            raise OSError("disk full")
        real(frame, path)
        written_before_crash.append(path.name)

    monkeypatch.setattr(writer_mod, "write_parquet", crash_on_jobs)
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


def test_run_no_report_writes_the_data_only_and_report_renders_it_later(tmp_path: Path) -> None:
    """``run --no-report`` writes the data and run.json, no page and no plot; ``report RUN_DIR`` then renders
    the same pages and plots as a run that wrote its report at once."""
    from typer.testing import CliRunner

    from gigafactory_sim.cli import app

    runner = CliRunner()
    args = ["--seed", "3", "--set", "horizon=2h", "-q"]
    full, bare = tmp_path / "full", tmp_path / "bare"
    assert runner.invoke(app, ["run", str(SCENARIO), "--out", str(full), *args]).exit_code == 0
    res = runner.invoke(app, ["run", str(SCENARIO), "--out", str(bare), "--no-report", *args])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in bare.iterdir()) == sorted(DATA_FILES)
    for name in DATA_FILES[:-1]:  # run.json differs in its wall time
        assert (bare / name).read_bytes() == (full / name).read_bytes(), name
    assert json.loads((bare / "run.json").read_text())["status"] == "completed"
    res = runner.invoke(app, ["report", str(bare)])
    assert res.exit_code == 0, res.output
    for name in REPORT_FILES:
        assert (bare / name).read_bytes() == (full / name).read_bytes(), name
    pngs = sorted(p.name for p in (full / "plots").iterdir())
    assert pngs == sorted(f"{name}.png" for name in DRAWN)
    assert sorted(p.name for p in (bare / "plots").iterdir()) == pngs


def test_rerender_of_a_run_without_report_keeps_plots_off(result_no_plots: RunResult, tmp_path: Path) -> None:
    out = write_run(result_no_plots, tmp_path / "run", meta=META, report=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(DATA_FILES)
    rerender(out)
    assert (out / "report.html").is_file() and not (out / "plots").exists()


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


def test_unknown_summary_sections_and_keys_are_rendered_with_readable_names(result: RunResult) -> None:
    summary = {
        **result.summary,
        "carbon": {"intensity_g_per_kwh": 52.5, "by_cluster": {"h200": {"t": 1.25}}},
        "water": {"used_m3": 12.0, "cooling_share": 0.25},
        "notes": ["a|b"],
    }
    page = render_html(summary, result.timeseries, result.jobs, {})
    md = render_markdown(summary, result.timeseries, result.jobs, {})
    for text in (page, md):
        assert "intensity of the energy drawn" in text and "52.5 g CO2/kWh" in text  # a known key, named
        assert "By cluster: h200: t" in text and "1.25 t CO2" in text  # an unknown one, still shown
        assert "Water" in text and "Cooling share" in text and "25.0 %" in text  # an unknown section
        assert "intensity_g_per_kwh" not in text and "energy.it_mwh" not in text  # no dotted keys
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


# --- readable figures: units from keys, precision, the story and the sections ------------------------------


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("inference.services.a.tokens.output_per_s", 373219.0, "373,219 /s"),  # a rate, not "4.32 d"
        ("inference.services.a.capacity_per_replica_output_tokens_per_s", 10095.8, "10,096 output tokens/s"),
        ("inference.services.a.capacity_per_replica_rps", 37.33, "37.3 requests/s"),
        ("wait_s.p95", 4320.0, "72 min"),
        ("wait_s.p99", 21384.0, "5.94 h"),
        ("inference.services.a.latency.mean_ttft_s", 0.03206, "32.1 ms"),
        ("deferral.mean_delay_h", 0.07358, "4.41 min"),  # not "0.07358 h"
        ("horizon_s", 2592000.0, "30 d"),
        ("energy.it_mwh", 2641.07, "2,641 MWh"),
        ("utilisation.allocated_fraction", 0.36774, "36.8 %"),
        ("reliability.energy_mwh.lost_fraction_of_training", 0.00756, "0.76 %"),
        ("carbon.by_class_t.training", 79.285, "79.3 t CO2"),
        ("reliability.down_node_h_by_cause.gpu", 406.7, "407 node-h"),
        ("utilisation.allocated_gpu_h", 1771347.3, "1,771,347 GPU-h"),
        ("cost.total_eur", 46269.05, "46,269 EUR"),
        ("cost.price_paid_eur_per_mwh", 17.075, "17.1 EUR/MWh"),
        ("inference.services.a.energy.it_kwh_per_1000_output_tokens", 0.000305, "0.000305 kWh per 1,000 output tokens"),
        ("jobs.completed", 13690, "13,690"),
        ("power.peak_at_s", 168364.5, "46.8 h after the start"),
        ("power_cap.hard_cap_kept", True, "yes"),
        ("wait_s.p50", None, "—"),
    ],
)
def test_figures_are_shown_in_their_unit(key: str, value: object, shown: str) -> None:
    assert format_value(value, key) == shown


def test_names_are_readable() -> None:
    assert humanise("energy_over_hard_cap_mwh") == "Energy over hard cap"
    assert humanise("node_failures_by_cause.gpu") == "Node failures by cause: GPU"
    assert humanise("self_consumption_fraction") == "Self consumption share"


def _card(cards: list[Card], title: str) -> Card:
    found = [c for c in cards if c.title == title]
    assert len(found) == 1, [c.title for c in cards]
    return found[0]


def test_story_without_statistics_uses_the_whole_run(result: RunResult) -> None:
    cards = story(result.summary)
    assert [c.title for c in cards] == ["Utilisation", "Jobs", "Power", "Energy"]  # quickstart has no grid etc.
    util = _card(cards, "Utilisation")
    assert util.figures[0] == (
        "GPUs allocated",
        format_value(result.summary["utilisation"]["allocated_fraction"], "fraction"),
    )
    assert "whole run" in util.note


def test_story_headlines_the_steady_state_when_the_run_measured_it(result: RunResult) -> None:
    stats = {
        "warmup_s": 9 * 86400.0,
        "warmup_rule": "mser5",
        "span_s": [9 * 86400.0, 30 * 86400.0],
        "steady": {"utilisation": {"allocated_fraction": 0.785, "busy_fraction": 0.77}},
        "batch_means": {
            "utilisation.allocated_fraction": {
                "mean": 0.785,
                "ci95_low": 0.771,
                "ci95_high": 0.799,
                "batches": 20,
                "lag1_autocorr": 0.12,
            }
        },
    }
    summary = {**result.summary, "statistics": stats}
    util = _card(story(summary), "Utilisation")
    assert util.figures[0] == ("GPUs allocated, steady state", "78.5 %")
    assert "9 d" in util.note and "MSER-5" in util.note and "77.1 % – 79.9 %" in util.note
    page = render_html(summary, result.timeseries, result.jobs, {})
    assert "Steady-state statistics" in page and "Confidence from batch means" in page
    assert "MSER-5 (automatic)" in page and "0.12" in page
    flat = {**summary, "statistics": {**stats, "steady": {"utilisation.allocated_fraction": 0.6}}}
    assert _card(story(flat), "Utilisation").figures[0][1] == "60.0 %"  # flat keys work too


def _with_energy_features(summary: dict, kept: bool) -> dict:
    return {
        **summary,
        "grid": {"zone": "FR", "peak_grid_import_mw": 112.5 if not kept else 99.0},
        "power_cap": {
            "hard_cap_min_mw": 90.0,
            "hard_cap_max_mw": 110.0,
            "hard_cap_kept": kept,
            "max_excess_over_hard_cap_mw": 2.5 if not kept else -11.0,
            "throttled_gpu_h": 1234.0,
        },
        "carbon": {"total_t": 3918.4, "intensity_g_per_kwh": 50.7, "mean_grid_intensity_g_per_kwh": 48.0},
        "cost": {"total_eur": 1907000.0, "price_paid_eur_per_mwh": 24.7, "mean_price_eur_per_mwh": 22.1},
        "inference": {
            "gpu_h": 1000.0,
            "services": {
                "chat": {"slo": {"ttft_s": 2.0, "tpot_s": 0.2, "quantile": 0.99, "attainment": 0.995, "met": True}},
                "code": {"slo": {"ttft_s": 1.0, "quantile": 0.99, "attainment": 0.9, "met": False}},
            },
        },
    }


def test_story_says_whether_the_cap_and_the_objectives_were_kept(result: RunResult) -> None:
    kept = story(_with_energy_features(result.summary, kept=True))
    assert [c.title for c in kept][:7] == [
        "Utilisation",
        "Jobs",
        "Power",
        "Energy",
        "Carbon",
        "Electricity cost",
        "Inference",
    ]
    power = _card(kept, "Power")
    assert power.status == "ok" and "kept under the 90–110 MW hard cap" in power.note
    assert ("peak grid draw", "99 MW") in power.figures and "1,234 GPU-h throttled" in power.note
    broken = _card(story(_with_energy_features(result.summary, kept=False)), "Power")
    assert broken.status == "warn" and "exceeded the 90–110 MW hard cap by up to 2.5 MW" in broken.note
    inference = _card(kept, "Inference")
    assert inference.status == "warn"  # one service missed its objectives
    assert ("chat: latency objectives", "met (99.5 % within)") in inference.figures
    assert ("code: latency objectives", "missed (90.0 % within)") in inference.figures
    assert _card(kept, "Carbon").figures[0] == ("emitted", "3,918 t CO2")


def test_each_feature_has_its_section_and_every_figure_is_shown(result: RunResult) -> None:
    summary = _with_energy_features(result.summary, kept=True)
    sections = build_sections(summary, result.jobs, ["power", "utilisation", "power_vs_cap", "odd"])
    ids = [s.id for s in sections]
    assert ids == ["utilisation", "energy", "power_cap", "grid", "inference", "more-plots"]
    by_id = {s.id: s for s in sections}
    assert by_id["energy"].plots == ["power"] and by_id["power_cap"].plots == ["power_vs_cap"]
    assert by_id["more-plots"].plots == ["odd"]  # a plot no section claims is not lost
    cells = [c for s in sections for t in s.tables for row in t.rows for c in row]
    shown = " ".join(cells)
    for top in ("utilisation", "energy", "power", "jobs", "wait_s", "power_cap", "carbon", "cost"):
        for key, value in flatten(summary[top], f"{top}."):
            assert format_value(value, key) in shown, key


def test_html_tables_flow_in_one_column(written: Path) -> None:
    """The old grid of section tables overprinted itself; tables now flow one after the other."""
    page = (written / "report.html").read_text()
    assert "grid-template-columns: repeat(auto-fill, minmax(320px" not in page
    assert 'class="sections"' not in page


# --- plots ----------------------------------------------------------------------------------------------


def test_energy_plot_counts_inference_apart_from_idle() -> None:
    summary = {
        "energy": {
            "it_mwh": 100.0,
            "facility_mwh": 120.0,
            "training_it_mwh": 60.0,
            "inference_it_mwh": 15.0,
            "idle_it_mwh": 25.0,
        }
    }
    assert [(name.split("\n")[0], v) for name, v, _ in _energy_split(summary)] == [
        ("training", 60.0),
        ("inference", 15.0),
        ("idle GPUs", 25.0),
        ("facility overhead", 20.0),
    ]


def test_wait_cdf_is_drawn_per_job_class(result: RunResult) -> None:
    groups = _wait_groups(result.jobs)
    assert [name for name, _ in groups] == sorted(result.jobs["job_class"].unique())
    assert sum(len(g) for _, g in groups) == len(result.jobs)


def test_throttle_shading_is_one_artist_drawn_as_the_spans_were() -> None:
    """``spans`` shades every throttled interval with one collection; the PNG is the one a patch per
    interval (``axvspan``, as before) gives, pixel for pixel."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    edges = np.datetime64("2024-06-03T00:00") + np.arange(201) * np.timedelta64(15, "m")
    share = np.where(np.arange(200) % 3 == 0, np.linspace(0.0, 40.0, 200), 0.0)
    cmap, norm = colormaps["Purples"], Normalize(0.0, 40.0)

    def draw(one_artist: bool) -> tuple[bytes, int]:
        fig = plot_style.new_figure()
        ax = fig.add_subplot()
        if one_artist:
            plot_style.spans(ax, edges, share, cmap, norm, alpha=0.55, zorder=0)
        else:
            for i in np.flatnonzero(share > 0):
                ax.axvspan(edges[i], edges[i + 1], color=cmap(norm(share[i])), alpha=0.55, lw=0, zorder=0)
        plot_style.steps(ax, edges, np.sin(np.arange(200) / 9.0))
        plot_style.time_axis(ax, edges)
        return plot_style.png(fig), len(ax.patches) + len(ax.collections)

    one, artists = draw(True)
    many, patches = draw(False)
    assert (artists, patches) == (1, int((share > 0).sum()))
    assert one == many


def test_time_plots_shade_the_warm_up(result: RunResult) -> None:
    with_warmup = {**result.summary, "statistics": {"warmup_s": 3600.0, "warmup_rule": "fixed"}}
    for draw in (power_plot, utilisation_plot, queue_plot):
        assert draw(with_warmup, result.timeseries, result.jobs) != draw(result.summary, result.timeseries, result.jobs)
    assert warmup_s({"statistics": {"warmup_s": 0.0}}) == 0.0 and warmup_s({}) == 0.0


def test_time_axis_names_the_range_in_utc() -> None:
    assert _span_text(pd.Timestamp("2024-06-03"), pd.Timestamp("2024-06-04 23:59")) == "3–4 June 2024"
    assert _span_text(pd.Timestamp("2024-06-28"), pd.Timestamp("2024-07-02")) == "28 June – 2 July 2024"
    assert _span_text(pd.Timestamp("2024-06-03 01:00"), pd.Timestamp("2024-06-03 07:00")) == "3 June 2024"


def test_a_stopped_runs_page_says_it_is_partial(result_no_plots: RunResult) -> None:
    summary = result_no_plots.summary
    assert "Partial run" not in render_markdown(summary, result_no_plots.timeseries, result_no_plots.jobs, {})
    stopped = {**summary, "partial": {"simulated_s": 7200.0, "horizon_s": 86400.0, "signal": "SIGTERM"}}
    md = render_markdown(stopped, result_no_plots.timeseries, result_no_plots.jobs, {})
    html = render_html(stopped, result_no_plots.timeseries, result_no_plots.jobs, {})
    for page in (md, html):
        assert "Partial run: stopped by SIGTERM after 2 h of the 24 h planned" in page


def test_pages_without_plots_never_import_matplotlib() -> None:
    """``report.plots: false`` (sweeps, planning) writes the pages without paying matplotlib's import."""
    import subprocess
    import sys

    code = (
        "import sys, gigafactory_sim as g\n"
        "from gigafactory_sim.report.files import report_files\n"
        "r = g.run(g.load_scenario('scenarios/quickstart.yaml', ['horizon=2h']))\n"
        "files = report_files(r.summary, r.timeseries, r.jobs, plots=False)\n"
        "assert 'report.html' in files\n"
        "print('matplotlib' in sys.modules)\n"
    )
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"


def test_a_disaggregated_service_gets_its_pools_table() -> None:
    """Each prefill and decode pool is a column of its own table, and its figures are not repeated among the
    service's leftovers."""
    root = Path(__file__).resolve().parents[1]
    res = g.run(g.load_scenario(root / "scenarios" / "disaggregated.yaml", ["horizon=30m"]))
    sections = build_sections(res.summary, res.jobs)
    tables = {t.title: t for s in sections for t in s.tables}
    pools = tables["Disaggregated services: prefill and decode pools"]
    assert pools.headers == ["", "rag-70b: prefill", "rag-70b: decode"]
    rows = {r[0]: r[1:] for r in pools.rows}
    gpu = res.summary["inference"]["services"]["rag-70b"]["pools"]["prefill"]["gpu_h"]
    assert rows["GPU-time"][0] == format_value(gpu, "gpu_h")
    assert "KV moved (TB)" in tables["Disaggregated services: KV cache transfers"].headers
    leftovers = [r[0] for t in tables.values() for r in t.rows if str(r[0]).lower().startswith(("pools", "kv link"))]
    assert not leftovers
