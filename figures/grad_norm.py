"""Figure 1: initial gradient norm per method (at its default rank) and against rank."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

import adapters
from figures.records import aggregate, by_method, error_bars
from figures.style import mark_empty, method_style
from nfl.config import ExperimentConfig


def grad_norm_figure(records: list[dict[str, Any]], config: ExperimentConfig) -> plt.Figure:
    """Left: bars at each method's default rank (or its smallest swept rank), mean ± 95% CI over
    seeds; right: the same against rank, log-log. Full fine-tuning is the dashed reference."""
    series = by_method(aggregate(records, lambda r: r["summary"]["initial_grad_norm"]))
    full = series.pop("full", None)
    fig, (bars, lines) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.1, 1]})

    if not series:
        for ax in (bars, lines):
            mark_empty(ax)
    shown = []
    for method, points in series.items():
        default = adapters.get(method).default_rank
        shown.append(next((p for p in points if p.rank == default), points[0]))
    xs = np.arange(len(shown))
    bars.bar(xs, [p.mean for p in shown], yerr=error_bars(shown), color=[method_style(p.method)["color"] for p in shown], capsize=3)
    bars.set_xticks(xs, [f"{method_style(p.method)['label']} r={p.rank}" for p in shown], fontsize=8, rotation=40, ha="right", rotation_mode="anchor")
    # The regulariser's own gradient (AdaLoRA's orthogonality penalty) is marked apart, never summed.
    regularizer = {(p.method, p.rank): p for p in aggregate(records, lambda r: r["summary"].get("initial_regularizer_grad_norm") or float("nan"))}
    apart = [(x, regularizer[(p.method, p.rank)].mean) for x, p in zip(xs, shown) if np.isfinite(regularizer[(p.method, p.rank)].mean)]
    if apart:
        bars.scatter(*zip(*apart), marker="x", color="black", zorder=3, label="regulariser's gradient alone (not in the bar)")
        bars.legend(loc="upper left", fontsize=7)
    bars.set_yscale("log" if series else "linear")
    bars.set_ylabel("‖∇L‖₂ at the first adaptation step")
    bars.set_title("Initial gradient norm (default ranks)")

    for method, points in series.items():
        style = method_style(method)
        ranks = [p.rank for p in points]
        lines.errorbar(ranks, [p.mean for p in points], yerr=error_bars(points), color=style["color"], marker=style["marker"], label=style["label"], ms=4, capsize=2)
    if series:
        lines.set_xscale("log", base=2)
        lines.set_yscale("log")
    lines.set_xlabel("rank r")
    lines.set_title("Initial gradient norm vs rank")

    if full is not None:
        for ax in (bars, lines):
            ax.axhline(full[0].mean, color=method_style("full")["color"], ls="--", lw=1.2, label="Full FT")
    lines.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    seeds = max(p.n for ps in series.values() for p in ps) if series else 0
    fig.suptitle(f"Figure 1 — preset {config.preset}, width {config.model.width}, {seeds} seed(s), mean ± 95% CI")
    fig.tight_layout()
    return fig
