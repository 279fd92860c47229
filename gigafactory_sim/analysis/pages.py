"""Small helpers shared by the comparison and sweep outputs: number formatting, Markdown and self-contained
HTML pages (PNGs embedded as data URIs), and writing a directory atomically."""

from __future__ import annotations

import base64
import html
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from gigafactory_sim.report.format import sig

__all__ = ["Section", "atomic_dir", "fmt", "fmt_delta", "fmt_pct", "html_page", "markdown_page", "md_table"]

Section = tuple[str, str, Sequence[Sequence[str]] | None, Sequence[tuple[str, bytes]]]
"""``(heading, paragraph text, table rows (first row = header) or None, [(png file name, png bytes)])``."""


def fmt(x: object) -> str:
    """A number for a table, the one format of every value and delta: 4 significant figures (never fewer
    than the integer digits), thousands separators, no exponent above 1e-6; '–' for missing."""
    if x is None:
        return "–"
    if isinstance(x, bool) or not isinstance(x, int | float):
        return str(x)
    if math.isnan(x):
        return "–"
    return sig(x, 4)


def fmt_delta(x: object) -> str:
    """A difference in the same format as :func:`fmt`, with its sign (``+1,234``, ``-0.25``, ``0``)."""
    text = fmt(x)
    return f"+{text}" if isinstance(x, int | float) and not isinstance(x, bool) and x > 0 else text


def fmt_pct(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:+.1f} %"


def md_table(rows: Sequence[Sequence[str]]) -> str:
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    header, *body = rows
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def markdown_page(title: str, sections: Sequence[Section]) -> str:
    """Markdown with images referenced by file name (the PNGs are written next to it)."""
    parts = [f"# {title}", ""]
    for heading, text, rows, images in sections:
        parts += [f"## {heading}", ""]
        if text:
            parts += [text, ""]
        if rows:
            parts += [md_table(rows), ""]
        parts += [f"![{name}]({name})\n" for name, _ in images]
    return "\n".join(parts)


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1200px}
body{color:#222}
table{border-collapse:collapse;font-size:0.85rem;margin:0.5rem 0}th,td{border:1px solid #ccc;padding:3px 8px}
th{background:#f0f0f0}td{text-align:right}td:first-child{text-align:left}img{max-width:100%}
.note{background:#fff6d5;border-left:4px solid #e0b000;padding:0.4rem 0.8rem}"""


def html_page(title: str, sections: Sequence[Section]) -> str:
    """One self-contained HTML file: inline CSS, PNGs embedded as base64 data URIs."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    for heading, text, rows, images in sections:
        parts.append(f"<h2>{esc(heading)}</h2>")
        for para in filter(None, text.split("\n\n")):
            cls = ' class="note"' if para.startswith("Not comparable") else ""
            parts.append(f"<p{cls}>{esc(para).replace(chr(10), '<br>')}</p>")
        if rows:
            header, *body = rows
            heads = "".join(f"<th>{esc(h)}</th>" for h in header)
            parts.append(f"<table><thead><tr>{heads}</tr></thead>")
            parts.append(
                "<tbody>"
                + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in body)
                + "</tbody></table>"
            )
        for name, png in images:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{data}"></figure>')
    parts.append("</body></html>")
    return "\n".join(parts)


@contextmanager
def atomic_dir(out_dir: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``out_dir`` to fill; on success it is renamed to ``out_dir``.

    ``out_dir`` must not exist or be empty. On an error the temporary directory is removed.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out_dir.exists():
        out_dir.rmdir()
    tmp.rename(out_dir)
