"""Figure 1: initial gradient norm per method (at its default rank) and against rank."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

import adapters
from figures.records import Point, aggregate, by_method, error_bars
from figures.style import interval_wording, mark_empty, method_style
from nfl.config import ExperimentConfig

_REGULARISER_MARKER = "x"


def _regulariser_points(records: list[dict[str, Any]]) -> dict[tuple[str, int | None], Point]:
    """(method, rank) -> the norm of its regulariser's gradient alone, where the records have one."""
    with_reg = [r for r in records if r["summary"].get("initial_regularizer_grad_norm") is not None]
    return {(p.method, p.rank): p for p in aggregate(with_reg, lambda r: r["summary"]["initial_regularizer_grad_norm"])}


def grad_norm_figure(records: list[dict[str, Any]], config: ExperimentConfig) -> plt.Figure:
    """Left: each method at its default rank (or its smallest swept rank), a point with its
    interval over seeds; right: the same against rank, log-log. Full fine-tuning is the dashed
    reference. A method with a regulariser (AdaLoRA) also shows its regulariser's gradient alone."""
    series = by_method(aggregate(records, lambda r: r["summary"]["initial_grad_norm"]))
    regulariser = _regulariser_points(records)
    full = series.pop("full", None)
    fig, (points, lines) = plt.subplots(1, 2, figsize=(11.5, 4.4), gridspec_kw={"width_ratios": [1.1, 1]})

    if not series:
        for ax in (points, lines):
            mark_empty(ax)
    shown = []
    for method, ps in series.items():
        default = adapters.get(method).default_rank
        shown.append(next((p for p in ps if p.rank == default), ps[0]))
    for x, p in enumerate(shown):
        style = method_style(p.method)
        points.errorbar(x, p.mean, yerr=error_bars([p]), color=style["color"], marker=style["marker"], ms=8, capsize=3,
                        ls="none")
        reg = regulariser.get((p.method, p.rank))
        if reg is not None:
            points.errorbar(x + 0.3, reg.mean, yerr=error_bars([reg]), color=style["color"], marker=_REGULARISER_MARKER,
                            ms=8, mew=1.8, capsize=3, ls="none", label="its regulariser's gradient alone")
    points.set_xticks(np.arange(len(shown)), [f"{method_style(p.method)['label']} r={p.rank}" for p in shown],
                      fontsize=8, rotation=40, ha="right", rotation_mode="anchor")
    for tick, p in zip(points.get_xticklabels(), shown):
        tick.set_color(method_style(p.method)["color"])
    points.set_xlim(-0.6, len(shown) - 0.4)
    points.set_yscale("log" if series else "linear")
    points.set_ylabel("‖∇L‖₂ of the task loss at the first adaptation step")
    points.set_title("Initial gradient norm (default ranks)")

    for method, ps in series.items():
        style = method_style(method)
        lines.errorbar([p.rank for p in ps], [p.mean for p in ps], yerr=error_bars(ps), color=style["color"],
                       marker=style["marker"], label=style["label"], ms=4, capsize=2)
    if series:
        lines.set_xscale("log", base=2)
        lines.set_yscale("log")
    lines.set_xlabel("rank r")
    lines.set_title("Initial gradient norm vs rank")

    if full is not None:
        style = method_style("full")
        for ax in (points, lines):
            ax.axhline(full[0].mean, color=style["color"], ls="--", lw=1.2, label=style["label"])
    lines.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    if regulariser:
        points.legend(loc="lower left", fontsize=7)
    seeds = max(p.n for ps in series.values() for p in ps) if series else 0
    fig.suptitle(f"Figure 1 — preset {config.preset}, width {config.width}, {seeds} seed(s), "
                 f"{interval_wording(seeds)}")
    fig.tight_layout()
    return fig
