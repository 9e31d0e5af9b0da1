"""Costs against trainable parameters: init time, train-step time (Figure 2, middle and right)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from figures.curves import end_labels
from figures.style import method_order, method_style
from nfl.measure.rounds import NOISE_RULE, clock_label


@dataclass(frozen=True)
class TimedPoint:
    """One (method, rank) of a timing study, in ms: its fastest round (the cost) and the median."""

    method: str
    rank: int | None
    params: int
    fastest: float
    median: float
    rounds: int
    noisy: bool


def timing_points(records: list[dict[str, Any]]) -> list[TimedPoint]:
    """One point per (method, rank), in ms."""
    return [
        TimedPoint(r["method"], r["rank"], r["summary"]["trainable_params"], 1e3 * r["timing"]["fastest_s"],
                   1e3 * r["timing"]["median_s"], r["timing"]["rounds"], r["timing"]["noisy"])
        for r in records
    ]


def timing_ylabel(records: list[dict[str, Any]], unit: str) -> str:
    """"ms per step, thread CPU time (fastest of 11 rounds, bar to the median)": what is drawn, on which clock."""
    rounds = max((r["timing"]["rounds"] for r in records), default=0)
    spread = "one round" if rounds == 1 else f"fastest of {rounds} rounds, bar to the median"
    return f"ms per {unit}, {clock_label(records)}\n({spread})" if records else f"ms per {unit}"


def draw_cost_vs_params(ax: plt.Axes, records: list[dict[str, Any]], title: str, unit: str) -> None:
    """Each cell's cost (its fastest round) against trainable parameters, one line per method over
    its ranks, a bar up to its median round (how much load it met; never below the point, so log
    axes draw it whole); a noisy cell is drawn hollow and said so in the corner."""
    by_method: dict[str, list[TimedPoint]] = {}
    ends = []
    for p in timing_points(records):
        by_method.setdefault(p.method, []).append(p)
    for method, points in sorted(by_method.items(), key=lambda item: method_order(item[0])):
        points.sort(key=lambda p: -1 if p.rank is None else p.rank)
        style = method_style(method)
        xs, ys = [p.params for p in points], [p.fastest for p in points]
        bars = [[0.0] * len(points), [p.median - p.fastest for p in points]]
        ms = 7 if len(points) == 1 else 4
        ax.errorbar(xs, ys, yerr=bars, color=style["color"], marker=style["marker"], ms=ms, capsize=2, lw=1.3,
                    label=style["label"], ls="-" if len(points) > 1 else "none")
        noisy = [p for p in points if p.noisy]
        ax.plot([p.params for p in noisy], [p.fastest for p in noisy], ls="none", marker=style["marker"], ms=ms + 3,
                mfc="white", mec=style["color"], mew=1.3)
        ends.append((xs[-1], ys[-1], method))
    if any(p.noisy for ps in by_method.values() for p in ps):
        ax.legend(handles=[Line2D([], [], ls="none", marker="o", mfc="white", mec="0.3", ms=7)], loc="upper left",
                  labels=[f"noisy: {NOISE_RULE}"], fontsize=7, handletextpad=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    end_labels(ax, ends)  # direct labels: lines of near colours are told apart where they end
    ax.set_xlabel("trainable parameters")
    ax.set_ylabel(timing_ylabel(records, unit))
    ax.set_title(title)


def cost_figure(records: list[dict[str, Any]], title: str, unit: str, subtitle: str = "") -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    draw_cost_vs_params(ax, records, title + (f"\n{subtitle}" if subtitle else ""), unit)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(0.92, 0.5))
    return fig
