"""report.html in a real headless Chromium, at 1,400 and 800 px wide: no element overlaps another, every image
loads, no table or cell overflows its box, and the page never scrolls sideways.

The report itself carries no script; the test loads a copy with a small measuring script appended, which writes
its measurements into the DOM, read back with ``chromium --dump-dom`` (no network, no extra package). CI installs
Chromium from Debian's packages (``.ci/run``), so there the test always runs; elsewhere it is skipped when no
Chromium is on PATH.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import gigafactory_sim as g
from gigafactory_sim.report.plots import render_plots
from gigafactory_sim.report.render import render_html
from gigafactory_sim.report.writer import write_run

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (1400, 800)
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

MEASURE_JS = r"""
window.addEventListener('load', function () {
  var out = {width: window.innerWidth, scrollWidth: document.documentElement.scrollWidth,
             overlaps: [], images: [], outside: [], spills: []};
  function name(e) {
    return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '') + ': ' +
      (e.getAttribute('alt') || e.textContent || '').trim().slice(0, 50);
  }
  var els = Array.prototype.slice.call(
    document.querySelectorAll('h1,h2,h3,p,nav,figure,img,figcaption,table,.card,dt,dd'));
  var rects = els.map(function (e) { return e.getBoundingClientRect(); });
  for (var i = 0; i < els.length; i++) {
    for (var j = i + 1; j < els.length; j++) {
      if (els[i].contains(els[j]) || els[j].contains(els[i])) continue;
      var a = rects[i], b = rects[j];
      var w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      var h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 1 && h > 1) out.overlaps.push([name(els[i]), name(els[j])]);
    }
  }
  var body = document.body.getBoundingClientRect(), style = getComputedStyle(document.body);
  var left = body.left + parseFloat(style.paddingLeft), right = body.right - parseFloat(style.paddingRight);
  els.forEach(function (e, k) {
    if (rects[k].left < left - 1 || rects[k].right > right + 1) out.outside.push(name(e));
  });
  document.querySelectorAll('td,th,dd,dt,a').forEach(function (e) {
    if (e.scrollWidth > e.clientWidth + 1 && e.tagName !== 'A') out.spills.push(name(e));
    var r = e.getBoundingClientRect();
    if (r.right > right + 1) out.outside.push(name(e));
  });
  document.querySelectorAll('img').forEach(function (im) {
    out.images.push({alt: im.alt, complete: im.complete, naturalWidth: im.naturalWidth});
  });
  var pre = document.createElement('pre');
  pre.id = 'measurements';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
"""


def _chromium() -> str:
    for exe in BROWSERS:
        found = shutil.which(exe)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("no Chromium on PATH: .ci/run installs it (apt-get install chromium)")
    pytest.skip("no Chromium on PATH (CI installs it)")


def measure(page: str, width: int, tmp: Path) -> dict[str, Any]:
    """Load ``page`` (HTML text) in headless Chromium at ``width`` px and return the script's measurements."""
    exe = _chromium()
    probe = tmp / f"probe-{width}.html"
    probe.write_text(page.replace("</body>", f"<script>{MEASURE_JS}</script></body>"), encoding="utf-8")
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-extensions",
        "--mute-audio",
        f"--user-data-dir={tmp / f'profile-{width}'}",
        f"--window-size={width},1000",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    match = re.search(r'<pre id="measurements">(.*?)</pre>', done.stdout, re.S)
    assert match, f"Chromium gave no measurements (exit {done.returncode}): {done.stderr[-2000:]}"
    data: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    assert data["width"] == width
    return data


def problems(data: dict[str, Any]) -> list[str]:
    found = [f"overlap: {a} / {b}" for a, b in data["overlaps"]]
    found += [f"outside the page column: {e}" for e in data["outside"]]
    found += [f"content spills out of: {e}" for e in data["spills"]]
    found += [
        f"image not loaded: {im['alt']}" for im in data["images"] if not im["complete"] or im["naturalWidth"] <= 0
    ]
    if data["scrollWidth"] > data["width"]:
        found.append(f"page scrolls sideways: {data['scrollWidth']} px wide in a {data['width']} px window")
    return found


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """report.html of a small training run, of a run with every energy feature, and of one with steady-state
    statistics."""
    out = tmp_path_factory.mktemp("browser-runs")
    found = {}
    quick = g.run(g.load_scenario(ROOT / "scenarios" / "quickstart.yaml", ["horizon=12h"]))
    capped = g.run(g.load_scenario(ROOT / "scenarios" / "power-capped.yaml", ["horizon=1d"]))
    for name, result in (("quickstart", quick), ("power-capped", capped)):
        run_dir = write_run(result, out / name, meta={"scenario": name})
        found[name] = (run_dir / "report.html").read_text(encoding="utf-8")
    stats = {
        "warmup_s": 7200.0,
        "warmup_rule": "mser5",
        "span_s": [7200.0, 43200.0],
        "steady": {
            "utilisation.allocated_fraction": 0.71,
            "utilisation.busy_fraction": 0.70,
            "wait_s.p95": 1234.5,
            "energy.facility_mwh": 12.25,
        },
        "batch_means": {
            "utilisation.allocated_fraction": {
                "mean": 0.71,
                "ci95_low": 0.69,
                "ci95_high": 0.73,
                "batches": 20,
                "lag1_autocorr": 0.08,
            },
            "wait_s.p95": {
                "mean": 1234.5,
                "ci95_low": 1000.0,
                "ci95_high": 1500.0,
                "batches": 20,
                "lag1_autocorr": 0.2,
            },
        },
    }
    summary = {**quick.summary, "statistics": stats}
    found["statistics"] = render_html(
        summary, quick.timeseries, quick.jobs, render_plots(summary, quick.timeseries, quick.jobs)
    )
    return found


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["quickstart", "power-capped", "statistics"])
def test_report_lays_out_cleanly_in_chromium(pages: dict[str, str], name: str, width: int, tmp_path: Path) -> None:
    data = measure(pages[name], width, tmp_path)
    assert len(data["images"]) == pages[name].count("<img"), "every plot is an image on the page"
    assert len(data["images"]) >= 4
    assert problems(data) == []


def test_the_checks_catch_overprinting_tables(tmp_path: Path) -> None:
    """The layout the report had before: section tables in a grid of 320 px columns, long keys -> overprint."""
    long_rows = "".join(
        f"<tr><td>inference.services.chat-70b.capacity_per_replica_output_tokens_{i}</td>"
        f"<td>10,095.769108927021</td></tr>"
        for i in range(5)
    )
    table = f"<table><tr><th>key</th><th>value</th></tr>{long_rows}</table>"
    page = (
        "<!DOCTYPE html><html><head><style>body{max-width:1100px;margin:0 auto;padding:1.5rem}"
        "table{border-collapse:collapse}td{border:1px solid #ccc}"
        ".sections{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:0 1.5rem}"
        f'</style></head><body><div class="sections"><div>{table}</div><div>{table}</div>'
        f'<div>{table}</div></div><img alt="broken" src="data:image/png;base64,AAAA"></body></html>'
    )
    found = problems(measure(page, 1400, tmp_path))
    assert any(p.startswith("overlap: table") for p in found), found
    assert any(p.startswith("image not loaded") for p in found), found
