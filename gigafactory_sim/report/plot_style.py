"""One look for every report plot: figures, the UTC time axis, legends outside the data, thousands separators,
value labels on bars, and the warm-up span shaded when the run excluded one.

Figures are :class:`matplotlib.figure.Figure` objects with the constrained layout, rendered by the Agg canvas
directly (pyplot is never imported, so no global state is touched), PNGs written without a timestamp so the
same run gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import Colormap, Normalize
from matplotlib.container import BarContainer
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num, num2date
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from gigafactory_sim.report.format import sig

__all__ = [
    "DPI",
    "bar_labels",
    "counts",
    "legend_below",
    "log_ticks",
    "new_axes",
    "new_figure",
    "no_data",
    "png",
    "shade_warmup",
    "spans",
    "steps",
    "thousands",
    "time_axis",
    "time_edges",
    "warmup_s",
]

DPI = 100
WIDTH_IN = 9.0


def new_figure(height_in: float = 3.8, width_in: float = WIDTH_IN) -> Figure:
    return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def new_axes(title: str, ylabel: str, height_in: float = 3.8) -> tuple[Figure, Axes]:
    """A figure with one titled, gridded axes (the shape of most report plots)."""
    fig = new_figure(height_in)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def png(fig: Figure) -> bytes:
    """``fig`` as PNG bytes, drawn once.

    ``Figure.savefig`` draws a figure with a layout engine twice (a first pass with drawing disabled, to settle
    the constrained layout, then the real one); the Agg canvas's ``print_png`` draws it once, running the
    layout in that draw. The bytes are the same (checked on every plot of the base run) for about a fifth less
    time per plot."""
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf, metadata={"Software": None})
    return buf.getvalue()


def no_data(fig: Figure, ax: Axes, message: str) -> bytes:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])
    return png(fig)


def _tick(x: float, _pos: object = None) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:g}"


def thousands(ax: Axes, axis: str = "y") -> None:
    """Tick labels with thousands separators (``12,000`` rather than ``12000`` or ``1.2e4``)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(_tick))


def counts(ax: Axes, axis: str = "y") -> None:
    """A count axis: whole-number ticks only, with thousands separators."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(MaxNLocator(integer=True))
    target.set_major_formatter(FuncFormatter(_tick))


def log_ticks(ax: Axes, axis: str = "y") -> None:
    """Plain numbers (``20``, ``1,000``) instead of powers of ten on a log axis, minor ticks labelled too."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(_tick))
    target.set_minor_formatter(FuncFormatter(lambda x, _pos=None: _tick(x) if str(f"{x:g}")[0] in "1235" else ""))


def time_edges(timeseries: pd.DataFrame) -> np.ndarray | None:
    """Interval edges (naive UTC ``datetime64``), one more than rows; None when there is nothing to draw."""
    if len(timeseries) == 0 or "time" not in timeseries.columns:
        return None
    times = pd.DatetimeIndex(timeseries["time"])
    if times.tz is not None:
        times = times.tz_convert("UTC").tz_localize(None)
    if {"t_start_s", "t_end_s"} <= set(timeseries.columns):
        last_s = float(timeseries["t_end_s"].iloc[-1] - timeseries["t_start_s"].iloc[-1])
    else:
        last_s = float((times[-1] - times[-2]).total_seconds()) if len(times) > 1 else 0.0
    end = times[-1] + pd.to_timedelta(last_s, unit="s")
    return np.append(times.to_numpy(), np.datetime64(end.to_datetime64()))


def steps(ax: Axes, edges: np.ndarray, values: pd.Series | np.ndarray, **kwargs: Any) -> None:
    """Interval means drawn as steps spanning each interval."""
    v = np.asarray(values, dtype=float)
    ax.step(edges, np.append(v, v[-1]), where="post", **kwargs)


def spans(
    ax: Axes, edges: np.ndarray, values: np.ndarray, cmap: Colormap, norm: Normalize, **kwargs: Any
) -> PolyCollection | None:
    """Shade each interval whose value is above zero over the whole height of the axes, coloured by ``cmap``
    at ``norm(value)``: one collection for every interval (as many ``axvspan`` patches would draw, at the cost
    of one artist instead of thousands in a long throttled run)."""
    shaded = np.flatnonzero(np.asarray(values, dtype=float) > 0)
    if not len(shaded):
        return None
    x = date2num(edges)
    x0, x1 = x[shaded], x[shaded + 1]
    bottom, top = np.zeros_like(x0), np.ones_like(x0)
    corners = np.stack([x0, bottom, x0, top, x1, top, x1, bottom], axis=1).reshape(-1, 4, 2)  # axes-tall boxes
    colours = cmap(norm(np.asarray(values, dtype=float)[shaded]))
    collection = PolyCollection(
        list(corners), facecolors=colours, edgecolors="none", linewidths=0, transform=ax.get_xaxis_transform(), **kwargs
    )
    ax.add_collection(collection, autolim=False)
    return collection


def _span_text(first: pd.Timestamp, last: pd.Timestamp) -> str:
    if first.year != last.year:
        return f"{first:%d %B %Y} – {last:%d %B %Y}"
    if first.month != last.month:
        return f"{first.day} {first:%B} – {last.day} {last:%B %Y}"
    if first.normalize() == last.normalize():
        return f"{first.day} {first:%B %Y}"
    return f"{first.day}–{last.day} {last:%B %Y}"


def time_axis(ax: Axes, edges: np.ndarray | None = None) -> None:
    """The one time axis of every time plot: UTC dates and times, the range named in the label
    (``time (UTC), 3–5 June 2024``). Call after plotting (the range is read from the axis limits)."""
    locator = AutoDateLocator(minticks=4, maxticks=9)
    formatter = ConciseDateFormatter(locator, show_offset=False)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(formatter)
    if edges is not None and len(edges):
        ax.set_xlim(edges[0], edges[-1])
    lo, hi = ax.get_xlim()
    first = pd.Timestamp(num2date(lo)).tz_localize(None)
    last = pd.Timestamp(num2date(hi)).tz_localize(None) - pd.Timedelta(microseconds=1)
    ax.set_xlabel(f"time (UTC), {_span_text(first, last)}")


def legend_below(fig: Figure, axes: Sequence[Axes] | Axes, ncols: int = 4) -> None:
    """One legend for the figure, outside and below the axes, so it never covers data."""
    handles: list[Any] = []
    labels: list[str] = []
    for ax in [axes] if isinstance(axes, Axes) else axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels and not lab.startswith("_"):
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(
            handles, labels, loc="outside lower center", ncols=min(ncols, len(labels)), fontsize="small", frameon=False
        )


def bar_labels(ax: Axes, bars: BarContainer, values: Sequence[float], unit: str = "") -> None:
    """The value above each bar, so a bar too small to see still reads (``22.1 MWh``)."""
    for rect, value in zip(bars, values, strict=True):
        if not np.isfinite(value):
            continue
        top = rect.get_y() + rect.get_height()
        ax.annotate(
            f"{sig(value)}{(' ' + unit) if unit else ''}",
            (rect.get_x() + rect.get_width() / 2, top),
            ha="center",
            va="bottom",
            fontsize="small",
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax.margins(y=0.12)


def warmup_s(summary: Mapping[str, Any]) -> float:
    """The warm-up the run excluded (``statistics.warmup_s``), 0 without one."""
    stats = summary.get("statistics")
    value = stats.get("warmup_s") if isinstance(stats, Mapping) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0.0


def shade_warmup(ax: Axes, summary: Mapping[str, Any], edges: np.ndarray | None) -> None:
    """Shade the warm-up span (from the start to ``statistics.warmup_s``) on a time axis."""
    w = warmup_s(summary)
    if w <= 0 or edges is None or not len(edges):
        return
    end = edges[0] + np.timedelta64(round(w * 1e6), "us")
    ax.axvspan(edges[0], min(end, edges[-1]), color="0.55", alpha=0.18, lw=0, label="warm-up (excluded)")
