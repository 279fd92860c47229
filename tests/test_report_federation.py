"""The federation's report and the commands that read runs: report.md/html of a federation (site table with
links to each site's report, residency audit, inter-site traffic, three plots), ``gigafactory-sim run`` and
``report`` on a federation, ``load_run``'s sites, ``compare`` with and without residency-driven placement, the
KPI table, and the page's layout in headless Chromium."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console
from test_report_browser import WIDTHS, measure, problems
from typer.testing import CliRunner

import gigafactory_sim as g
from gigafactory_sim.cli import app
from gigafactory_sim.cli_tables import kpi_table
from gigafactory_sim.report.federation import render_markdown
from gigafactory_sim.report.files import is_federation, report_files, site_reports
from gigafactory_sim.report.writer import write_run
from gigafactory_sim.result import RunResult

ROOT = Path(__file__).resolve().parents[1]
FEDERATION = ROOT / "scenarios" / "eu-federation.yaml"
SITES = ("paris", "frankfurt", "helsinki", "copenhagen")
PLOTS = ("allocation_by_site", "grid_by_site", "workload_by_site")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result() -> RunResult:
    return g.run(g.load_scenario(FEDERATION, ["horizon=1d"]))


@pytest.fixture(scope="module")
def run_dir(result: RunResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert result.scenario.report.plots, "the scenario draws plots"
    return write_run(result, tmp_path_factory.mktemp("federation") / "run", meta={"scenario": "eu-federation"})


def _table(md: str, title: str) -> list[list[str]]:
    """The rows (header first) of the Markdown table under ``### title``."""
    block = md.split(f"### {title}\n\n", 1)[1].split("\n\n", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines if not line.startswith("| ---")]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_the_summary_is_recognised_as_a_federation(result: RunResult) -> None:
    assert is_federation(result.summary)
    assert not is_federation(result.sites["paris"].summary)
    assert site_reports(result.summary) == {s: f"sites/{s}/report.html" for s in SITES}


def test_report_md_has_the_site_table_with_links(run_dir: Path, result: RunResult) -> None:
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# Federation report: eu-federation\n")
    assert "4 sites · 60,000 GPUs · placement weighted · 24 h" in md
    rows = _table(md, "Per site")
    assert rows[0] == ["", *SITES]
    by_label = {row[0]: row[1:] for row in rows[1:]}
    assert by_label["country"] == ["FR", "DE", "FI", "DK"]
    assert by_label["operator"][-1] == "third_country"
    assert by_label["GPUs"] == ["24,000", "16,000", "12,000", "8,000"]
    assert by_label["jobs submitted"] == [f"{result.summary['sites'][s]['jobs_submitted']:,}" for s in SITES]
    assert by_label["own report"] == [f"[{s} report](sites/{s}/report.html)" for s in SITES]
    for site in SITES:
        assert (run_dir / "sites" / site / "report.html").is_file()
        assert (run_dir / "sites" / site / "report.md").read_text(encoding="utf-8").startswith("# Run report:")


def test_report_md_has_the_residency_audit_with_no_violation(run_dir: Path, result: RunResult) -> None:
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert result.summary["residency"]["violations"] == 0
    assert "- **Residency** ✓: rule violations **0 (every rule kept)**." in md
    assert "## Residency audit\n\n0 violations: every rule kept." in md
    training = _table(md, "Training: where each workload ran")
    assert training[0][:4] == ["training workload", "site", "jobs", "GPU-time"]
    health = [row for row in training[1:] if row[0] == "health"]
    assert health and all(row[1] == "paris" for row in health), "health data stays in France"
    assert all(row[-1] == "yes" for row in training[1:])
    audited = {(r["workload"], r["site"]) for r in result.summary["residency"]["rows"] if "gpu_h" in r}
    assert {(f"training:{row[0]}", row[1]) for row in training[1:]} == audited
    inference = _table(md, "Inference: where each region was served")
    assert [row[1] for row in inference[1:]] == ["FR", "DE", "IT", "FI"]
    assert "p99 TTFT incl. network" in inference[0]


def test_report_md_has_the_traffic_table(run_dir: Path, result: RunResult) -> None:
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    rows = _table(md, "Traffic per directed link")
    assert rows[0] == ["link (from → to)", "transfers", "arrived", "TB", "link busy", "time in transfer", "egress"]
    used = [link for link in result.summary["network"]["links"] if link["transfers"] > 0]
    assert used, "the weighted placement moves data at 1 d"
    shown = {row[0]: row for row in rows[1:]}
    for link in used:
        row = shown[f"{link['from']} → {link['to']}"]
        assert row[1] == f"{link['transfers']:,}"
    assert rows[-1][0] == "all links"
    assert rows[-1][-1] == f"{result.summary['network']['egress_eur']:,.0f} EUR"
    assert f"of which egress **{result.summary['cost']['egress_eur']:,.0f} EUR**" in md


def test_the_three_plots_are_valid_pngs(run_dir: Path) -> None:
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    for name in PLOTS:
        data = (run_dir / "plots" / f"{name}.png").read_bytes()
        width, height = _png_size(data)
        assert len(data) > 5_000 and width == 900 and height > 200
        assert f"(plots/{name}.png)" in md
        assert f'id="plot-{name}"' in html
    assert html.count("<img") == len(PLOTS)


def test_a_violation_is_counted_and_flagged(result: RunResult) -> None:
    summary: dict[str, Any] = {**result.summary, "residency": dict(result.summary["residency"])}
    rows = [dict(r) for r in summary["residency"]["rows"]]
    rows[0]["allowed"] = False
    summary["residency"].update(violations=3, rows=rows)
    md = render_markdown(summary, result.timeseries, result.jobs, {}, {})
    assert "- **Residency** ⚠: rule violations **3**." in md
    assert "3 violations: work ran where its rules forbid" in md
    assert "every rule kept" not in md
    assert "](sites/" not in md, "no link without a site report"


def test_report_files_of_a_site_stay_single_site(result: RunResult) -> None:
    site = result.sites["paris"]
    files = report_files(site.summary, site.timeseries, site.jobs, plots=False)
    assert set(files) == {"report.md", "report.html"}
    assert files["report.md"].decode().startswith("# Run report: ")


def test_kpi_table_of_a_federation(result: RunResult) -> None:
    console = Console(width=120, record=True)
    console.print(kpi_table(result.summary, "eu-federation"))
    text = console.export_text()
    assert re.search(r"residency violations\s+│\s+0 \(every rule kept\)", text)
    assert re.search(rf"egress cost\s+│\s+EUR {result.summary['cost']['egress_eur']:,.0f}", text)
    assert "sites / placement" in text and "4 / weighted" in text
    assert "SLO attainment" not in text


def test_cli_run_then_report_rerenders(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", str(FEDERATION), "--set", "horizon=1d", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "residency violations" in res.output and "egress cost" in res.output
    assert (out / "sites" / "paris" / "report.html").is_file()
    before = {p: (out / p).read_bytes() for p in ("report.md", "report.html", "sites/paris/report.md")}
    for rel in ("report.md", "report.html", "plots/grid_by_site.png", "sites/paris/report.md"):
        (out / rel).unlink()
    res = CliRunner().invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "plots" / "grid_by_site.png").is_file()
    assert {p: (out / p).read_bytes() for p in before} == before, "re-rendered from the data, identically"


def test_load_run_reads_each_site(run_dir: Path, result: RunResult) -> None:
    run = g.load_run(run_dir)
    assert run.summary["residency"]["violations"] == 0
    assert list(run.sites) == list(SITES)
    for name, site in run.sites.items():
        assert site.path == run_dir / "sites" / name
        assert site.summary["gpus_total"] == result.summary["sites"][name]["gpus"]
        assert len(site.jobs) == len(result.sites[name].jobs)
    with pytest.raises(FileNotFoundError, match=r"run\.json is missing"):
        g.load_run(run_dir / "sites" / "paris")  # a site's folder is part of the run, not a run of its own


def test_compare_with_and_without_residency_driven_placement(tmp_path: Path) -> None:
    text = FEDERATION.read_text(encoding="utf-8")
    home, n = re.subn(r"(?m)^placement: .*$", "placement: {kind: home}", text)
    assert n == 1
    (tmp_path / "home.yaml").write_text(home, encoding="utf-8")
    out = tmp_path / "cmp"
    args = ["compare", str(FEDERATION), str(tmp_path / "home.yaml"), "--set", "horizon=1d", "--out", str(out)]
    res = CliRunner().invoke(app, [*args, "--label", "weighted", "--label", "home"])
    assert res.exit_code == 0, res.output
    md = (out / "comparison.md").read_text(encoding="utf-8")
    assert "- weighted: " in md and "- home: " in md
    table = pd.read_csv(out / "comparison.csv").set_index(["metric", "run"])["value"]
    assert table[("cost.egress_eur", "weighted")] > 0
    assert table[("cost.egress_eur", "home")] == 0, "every job at its home site moves no data"
    assert table[("carbon.total_t", "weighted")] != table[("carbon.total_t", "home")]
    assert table[("residency.violations", "home")] == 0
    assert (out / "comparison.html").is_file()


@pytest.mark.parametrize("width", WIDTHS)
def test_federation_report_lays_out_cleanly_in_chromium(run_dir: Path, width: int, tmp_path: Path) -> None:
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    data = measure(page, width, tmp_path)
    assert len(data["images"]) == len(PLOTS)
    assert problems(data) == []
