"""The run report as Markdown (plots linked as files) and as one self-contained HTML page (plots inlined).

Page order, for an operator: headline KPIs, then plots, then tables (clusters, jobs by source, and the whole
summary flattened section by section). The content comes from :mod:`gigafactory_sim.report.tables`, so both
formats say the same thing; the HTML has no external asset (inline CSS, PNGs as base64 ``data:`` URIs).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from typing import Any

import pandas as pd

from gigafactory_sim.report.plots import PLOTS
from gigafactory_sim.report.tables import (
    Table,
    cluster_table,
    headline,
    period,
    source_table,
    summary_sections,
)

__all__ = ["render_html", "render_markdown"]

_CAPTIONS = {spec.name: spec.caption for spec in PLOTS}


def _title(summary: Mapping[str, Any]) -> str:
    name = summary.get("scenario")
    return f"Run report: {name}" if name else "Run report"


def _subtitle(summary: Mapping[str, Any], timeseries: pd.DataFrame) -> str:
    parts = []
    if summary.get("seed") is not None:
        parts.append(f"seed {summary['seed']}")
    span = period(timeseries)
    if span:
        parts.append(span)
    return " · ".join(parts)


def _tables(summary: Mapping[str, Any], jobs: pd.DataFrame) -> list[Table]:
    found = [cluster_table(summary), source_table(jobs)]
    return [t for t in found if t is not None]


# --- Markdown --------------------------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |",
             "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame,
                    plots: Mapping[str, str]) -> str:
    """The report as Markdown; ``plots`` maps a plot name to its path relative to the report, e.g.
    ``plots/power.png``."""
    lines = [f"# {_title(summary)}", ""]
    sub = _subtitle(summary, timeseries)
    if sub:
        lines += [sub, ""]
    lines += ["## Headline", ""]
    lines += _md_table(["KPI", "value"], [[label, value] for label, value in headline(summary)])
    if plots:
        lines += ["", "## Plots"]
        for name, path in plots.items():
            caption = _CAPTIONS.get(name, name)
            lines += ["", f"### {caption}", "", f"![{caption}]({path})"]
    lines += ["", "## Tables"]
    for table in _tables(summary, jobs):
        lines += ["", f"### {table.title}", ""]
        lines += _md_table(table.headers, table.rows)
    lines += ["", "## Summary (summary.json)"]
    for table in summary_sections(summary):
        lines += ["", f"### {table.title}", ""]
        lines += _md_table(table.headers, table.rows)
    return "\n".join(lines) + "\n"


# --- HTML ------------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 1.5rem; color: #1d232a; background: #fff; line-height: 1.4; }
h1 { margin-bottom: 0.2rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: 0.3rem; }
h3 { margin: 1.2rem 0 0.4rem; font-size: 1rem; }
.sub { color: #57606a; margin-top: 0; }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 0.6rem; }
.kpi { border: 1px solid #d0d7de; border-radius: 6px; padding: 0.5rem 0.7rem; background: #f6f8fa; }
.kpi .label { font-size: 0.8rem; color: #57606a; }
.kpi .value { font-size: 1.25rem; font-weight: 600; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: 0.9rem; }
table { border-collapse: collapse; font-size: 0.9rem; margin-bottom: 0.5rem; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.6rem; text-align: left; }
td { font-variant-numeric: tabular-nums; } th { background: #f6f8fa; }
.sections { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 0 1.5rem; }
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    return f"<h3>{_esc(table.title)}</h3>\n<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame,
                plots_png: Mapping[str, bytes]) -> str:
    """The report as one self-contained HTML page; ``plots_png`` (name -> PNG bytes) is inlined as data URIs.
    """
    title = _title(summary)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    sub = _subtitle(summary, timeseries)
    if sub:
        parts.append(f'<p class="sub">{_esc(sub)}</p>')
    parts.append('<h2>Headline</h2>\n<div class="kpis">')
    parts += [f'<div class="kpi"><div class="label">{_esc(label)}</div><div class="value">{_esc(value)}</div>'
              f"</div>" for label, value in headline(summary)]
    parts.append("</div>")
    if plots_png:
        parts.append("<h2>Plots</h2>")
        for name, png in plots_png.items():
            caption = _CAPTIONS.get(name, name)
            data = base64.b64encode(png).decode("ascii")
            parts.append(f'<figure id="plot-{_esc(name)}"><img alt="{_esc(caption)}" '
                         f'src="data:image/png;base64,{data}"><figcaption>{_esc(caption)}</figcaption></figure>')
    parts.append("<h2>Tables</h2>")
    parts += [_html_table(t) for t in _tables(summary, jobs)]
    parts.append('<h2>Summary (summary.json)</h2>\n<div class="sections">')
    parts += [f"<div>{_html_table(t)}</div>" for t in summary_sections(summary)]
    parts += ["</div>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"
