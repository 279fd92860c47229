"""Write a comparison: ``comparison.csv`` (the long table), ``comparison.md`` (+ PNGs beside it) and a
self-contained ``comparison.html``."""

from __future__ import annotations

from pathlib import Path

from gigafactory_sim.analysis.compare import Comparison
from gigafactory_sim.analysis.pages import Section, atomic_dir, fmt, fmt_delta, fmt_pct, html_page, markdown_page

__all__ = ["NOT_COMPARABLE", "comparison_rows", "write_comparison"]

NOT_COMPARABLE = "n/c"


def comparison_rows(comparison: Comparison) -> list[list[str]]:
    """The wide KPI table as strings, header first: metric, baseline, then value / Δ / Δ% per other run, the
    metrics that changed most first (the comparison's order).

    A delta that is not comparable reads ``n/c``; a metric a run lacks, and the delta of a moment in the run
    (``power.peak_at_s``), read ``–``.
    """
    base = comparison.baseline.label
    header = ["metric", f"{base} (baseline)"]
    for run in comparison.runs[1:]:
        header += [run.label, "Δ", "Δ%"]
    table = comparison.table
    rows = [header]
    for metric in dict.fromkeys(table["metric"]):
        part = table[table["metric"] == metric].set_index("run")
        row = [metric, fmt(part.at[base, "value"])]
        for run in comparison.runs[1:]:
            r = part.loc[run.label]
            if r["comparable"]:
                row += [fmt(r["value"]), fmt_delta(r["delta"]), fmt_pct(r["delta_pct"])]
            elif r["note"].startswith("a moment"):
                row += [fmt(r["value"]), "–", "–"]
            else:
                row += [fmt(r["value"]), NOT_COMPARABLE, NOT_COMPARABLE]
        rows.append(row)
    return rows


def _sections(comparison: Comparison, images: dict[str, bytes]) -> list[Section]:
    runs = "\n".join(f"- {r.label}: {r.origin}" for r in comparison.runs)
    notes = ""
    if comparison.notes:
        notes = "Not comparable:\n" + "\n".join(f"- {n}" for n in comparison.notes)
    intro = f"Baseline: {comparison.baseline.label}. Runs:\n{runs}"
    return [
        ("Runs", "\n\n".join(filter(None, [intro, notes])), None, []),
        (
            "KPIs against the baseline",
            f"The figures that changed most come first. {NOT_COMPARABLE}: not "
            "comparable (see above); –: missing, or a moment in the run (no difference).",
            comparison_rows(comparison),
            [],
        ),
        (
            "Power and utilisation over time",
            "",
            None,
            [(f"{name}.png", images[name]) for name in ("power", "carbon", "utilisation") if name in images],
        ),
        ("Wait before start", "", None, [("wait_cdf.png", images["wait_cdf"])]),
        ("Energy, carbon and cost by workload class", "", None, [("by_class.png", images["by_class"])]),
    ]


def write_comparison(comparison: Comparison, out_dir: Path) -> Path:
    """Write the comparison files into ``out_dir`` (which must not exist or be empty); return it."""
    from gigafactory_sim.analysis.plots import png_bytes

    images = {name: png_bytes(fig) for name, fig in comparison.figures().items()}
    title = "Comparison: " + " vs ".join(r.label for r in comparison.runs)
    sections = _sections(comparison, images)
    with atomic_dir(Path(out_dir)) as tmp:
        comparison.table.to_csv(tmp / "comparison.csv", index=False)
        for name, png in images.items():
            (tmp / f"{name}.png").write_bytes(png)
        (tmp / "comparison.md").write_text(markdown_page(title, sections), encoding="utf-8")
        (tmp / "comparison.html").write_text(html_page(title, sections), encoding="utf-8")
    return Path(out_dir)
