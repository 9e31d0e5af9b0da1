"""Costs against trainable parameters: init time, train-step time (Figure 2, middle and right)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from figures.records import Point, by_method
from figures.style import method_style


def timing_points(records: list[dict[str, Any]]) -> list[Point]:
    """One Point per (method, rank): the median time in ms with its IQR as the spread."""
    return [
        Point(r["method"], r["rank"], r["summary"]["trainable_params"], 1e3 * r["timing"]["median_s"], 1e3 * r["timing"]["iqr_s"] / 2, r["timing"]["repeats"])
        for r in records
    ]


def draw_cost_vs_params(ax: plt.Axes, records: list[dict[str, Any]], title: str, ylabel: str) -> None:
    """Median time (ms, IQR bars) against trainable parameters, one line per method over its ranks."""
    for method, points in by_method(timing_points(records)).items():
        style = method_style(method)
        ax.errorbar(
            [p.params for p in points], [p.mean for p in points], yerr=[p.half for p in points],
            color=style["color"], marker=style["marker"], ms=4 if method != "full" else 7, capsize=2, lw=1.3,
            label=style["label"], ls="-" if len(points) > 1 else "none",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def cost_figure(records: list[dict[str, Any]], title: str, ylabel: str, subtitle: str = "") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    draw_cost_vs_params(ax, records, title + (f"\n{subtitle}" if subtitle else ""), ylabel)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig
