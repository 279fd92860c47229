"""The run report as Markdown (plots linked as files) and as one self-contained HTML page (plots inlined).

Page order, for an operator: the story of the run (one card per feature: :mod:`gigafactory_sim.report.story`),
then one section per feature with its tables and plots (:mod:`gigafactory_sim.report.sections`). Both formats
draw from the same content; the HTML has no external asset (inline CSS, PNGs as base64 ``data:`` URIs) and a
single-column flow that reflows at any width, so no table can overprint another.

A page is a :class:`Page` (title, subtitle, cards, sections, plot captions); :func:`page_markdown` and
:func:`page_html` write any page in that look, so the federation's report
(:mod:`gigafactory_sim.report.federation`) shares it.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from gigafactory_sim.report.format import format_value
from gigafactory_sim.report.sections import Section, build_sections
from gigafactory_sim.report.story import Card, story
from gigafactory_sim.report.tables import Table, period

__all__ = ["Page", "page_html", "page_markdown", "partial_note", "render_html", "render_markdown", "subtitle"]


def _captions(plots: list[str]) -> dict[str, str]:
    """The plots' captions (matplotlib is imported only when plots were drawn: ~0.4 s a report otherwise)."""
    if not plots:
        return {}
    from gigafactory_sim.report.plots import PLOTS

    return {spec.name: spec.caption for spec in PLOTS}


@dataclass(frozen=True)
class Page:
    """A report page: its heading, the line under it, an optional warning, the first screen's cards, then its
    sections; ``captions`` names each plot (by plot name)."""

    title: str
    subtitle: str
    note: str | None
    cards: list[Card]
    sections: list[Section]
    captions: Mapping[str, str]

    def caption(self, name: str) -> str:
        return self.captions.get(name, name)


def _title(summary: Mapping[str, Any]) -> str:
    name = summary.get("scenario")
    return f"Run report: {name}" if name else "Run report"


def subtitle(
    summary: Mapping[str, Any], timeseries: pd.DataFrame, lead: Sequence[str] = (), after_gpus: Sequence[str] = ()
) -> str:
    """The page's subtitle: ``lead``, GPUs, ``after_gpus``, horizon, simulated period, seed."""
    parts = list(lead)
    if summary.get("gpus_total") is not None:
        parts.append(f"{format_value(summary['gpus_total'])} GPUs")
    parts += after_gpus
    if summary.get("horizon_s") is not None:
        parts.append(format_value(summary["horizon_s"], "horizon_s"))
    span = period(timeseries)
    if span:
        parts.append(span)
    if summary.get("seed") is not None:
        parts.append(f"seed {summary['seed']}")
    return " · ".join(parts)


def partial_note(summary: Mapping[str, Any]) -> str | None:
    """The warning a stopped run's page opens with: what stopped it and the span its figures cover."""
    partial = summary.get("partial")
    if not isinstance(partial, Mapping):
        return None
    reached = format_value(partial.get("simulated_s"), "simulated_s")
    planned = format_value(partial.get("horizon_s"), "horizon_s")
    signal = partial.get("signal") or "a signal"
    return (
        f"Partial run: stopped by {signal} after {reached} of the {planned} planned. Every figure covers "
        f"the simulated time up to the stop."
    )


# --- Markdown --------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_link(table: Table, r: int, c: int, text: str) -> str:
    href = table.links.get((r, c))
    return f"[{_md_cell(text)}]({href})" if href else _md_cell(text)


def _md_table(table: Table) -> list[str]:
    align = [" ---: " if table.aligned(i) else " --- " for i in range(len(table.headers))]
    lines = ["| " + " | ".join(_md_cell(h) for h in table.headers) + " |", "|" + "|".join(align) + "|"]
    lines += [
        "| " + " | ".join(_md_link(table, r, c, cell) for c, cell in enumerate(row)) + " |"
        for r, row in enumerate(table.rows)
    ]
    return lines


def _md_card(card: Card) -> str:
    mark = {"ok": " ✓", "warn": " ⚠"}.get(card.status, "")
    figures = "; ".join(f"{label} **{value}**" for label, value in card.figures)
    return f"- **{card.title}**{mark}: {figures}." + (f" {card.note}" if card.note else "")


def _page(summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame, plots: list[str]) -> Page:
    return Page(
        _title(summary),
        subtitle(summary, timeseries),
        partial_note(summary),
        story(summary),
        build_sections(summary, jobs, plots),
        _captions(plots),
    )


def page_markdown(page: Page, plots: Mapping[str, str]) -> str:
    """``page`` as Markdown; ``plots`` maps a plot name to its path relative to the report."""
    lines = [f"# {page.title}", ""]
    if page.subtitle:
        lines += [page.subtitle, ""]
    if page.note:
        lines += [f"> **{page.note}**", ""]
    lines += ["## The run at a glance", ""]
    lines += [_md_card(card) for card in page.cards]
    for section in page.sections:
        lines += ["", f"## {section.title}"]
        if section.intro:
            lines += ["", section.intro]
        for table in section.tables:
            lines += ["", f"### {table.title}", ""]
            lines += _md_table(table)
        for name in section.plots:
            caption = page.caption(name)
            lines += ["", f"![{caption}]({plots[name]})", "", f"*{caption}*"]
    return "\n".join(lines) + "\n"


def render_markdown(
    summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame, plots: Mapping[str, str]
) -> str:
    """The report as Markdown; ``plots`` maps a plot name to its path relative to the report, e.g.
    ``plots/power.png``."""
    return page_markdown(_page(summary, timeseries, jobs, list(plots)), plots)


# --- HTML ------------------------------------------------------------------------------------------------

_CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 1.5rem; color: #1d232a; background: #fff; line-height: 1.4; }
h1 { margin: 0 0 0.2rem; font-size: 1.7rem; }
h2 { margin: 2.2rem 0 0.6rem; border-bottom: 1px solid #d0d7de; padding-bottom: 0.3rem; }
h3 { margin: 1.2rem 0 0.4rem; font-size: 1rem; }
.sub { color: #57606a; margin: 0 0 1rem; }
.partial { background: #fff8c5; border-left: 4px solid #bf8700; padding: 0.5rem 0.75rem; margin: 0 0 1rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 0.7rem; }
.card { border: 1px solid #d0d7de; border-left: 4px solid #8c959f; border-radius: 6px; padding: 0.55rem 0.8rem;
        background: #f6f8fa; min-width: 0; }
.card.ok { border-left-color: #2da44e; } .card.warn { border-left-color: #d1242f; background: #fff5f5; }
.card h3 { margin: 0 0 0.3rem; font-size: 0.95rem; }
.card dl { margin: 0; } .card dt { font-size: 0.78rem; color: #57606a; }
.card dd { margin: 0 0 0.25rem; font-size: 1.2rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.card p { margin: 0.3rem 0 0; font-size: 0.82rem; color: #3b434b; }
nav.toc { margin: 1.2rem 0 0; font-size: 0.9rem; display: flex; flex-wrap: wrap; gap: 0.2rem 0.9rem; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 0 0 0.6rem; max-width: 100%; }
th, td { border: 1px solid #d0d7de; padding: 0.22rem 0.55rem; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f6f8fa; font-weight: 600; } td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; } figure img { display: block; max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: 0.9rem; margin-top: 0.2rem; }
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_table(table: Table) -> str:
    def cls(i: int) -> str:
        return ' class="n"' if table.aligned(i) else ""

    head = "".join(f"<th{cls(i)}>{_esc(h)}</th>" for i, h in enumerate(table.headers))

    def cell(r: int, i: int, text: str) -> str:
        href = table.links.get((r, i))
        return f'<a href="{_esc(href)}">{_esc(text)}</a>' if href else _esc(text)

    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{cell(r, i, c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for r, row in enumerate(table.rows)
    )
    return f"<h3>{_esc(table.title)}</h3>\n<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_card(card: Card) -> str:
    status = f" {card.status}" if card.status else ""
    figures = "".join(f"<dt>{_esc(label)}</dt><dd>{_esc(value)}</dd>" for label, value in card.figures)
    note = f"<p>{_esc(card.note)}</p>" if card.note else ""
    return f'<div class="card{status}"><h3>{_esc(card.title)}</h3><dl>{figures}</dl>{note}</div>'


def _html_section(section: Section, plots_png: Mapping[str, bytes], page: Page) -> list[str]:
    parts = [f'<section id="{_esc(section.id)}">', f"<h2>{_esc(section.title)}</h2>"]
    if section.intro:
        parts.append(f"<p>{_esc(section.intro)}</p>")
    parts += [_html_table(t) for t in section.tables]
    for name in section.plots:
        caption = page.caption(name)
        data = base64.b64encode(plots_png[name]).decode("ascii")
        parts.append(
            f'<figure id="plot-{_esc(name)}"><img alt="{_esc(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{_esc(caption)}</figcaption></figure>'
        )
    parts.append("</section>")
    return parts


def page_html(page: Page, plots_png: Mapping[str, bytes]) -> str:
    """``page`` as one self-contained HTML page; ``plots_png`` (name -> PNG bytes) is inlined as data URIs."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(page.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(page.title)}</h1>",
    ]
    if page.subtitle:
        parts.append(f'<p class="sub">{_esc(page.subtitle)}</p>')
    if page.note:
        parts.append(f'<p class="partial"><strong>{_esc(page.note)}</strong></p>')
    parts.append('<section id="story" class="cards">')
    parts += [_html_card(card) for card in page.cards]
    parts.append("</section>")
    links = "".join(f'<a href="#{_esc(s.id)}">{_esc(s.title)}</a>' for s in page.sections)
    parts.append(f'<nav class="toc">{links}</nav>')
    for section in page.sections:
        parts += _html_section(section, plots_png, page)
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def render_html(
    summary: Mapping[str, Any], timeseries: pd.DataFrame, jobs: pd.DataFrame, plots_png: Mapping[str, bytes]
) -> str:
    """The report as one self-contained HTML page; ``plots_png`` (name -> PNG bytes) is inlined as data URIs."""
    return page_html(_page(summary, timeseries, jobs, list(plots_png)), plots_png)
