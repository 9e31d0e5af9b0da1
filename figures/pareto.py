"""Figure 2 (loss curves; init and train time vs parameters) and the Pareto view of the trade-off."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from figures.curves import draw_loss_curves
from figures.efficiency import draw_cost_vs_params, timing_points
from figures.records import Point, aggregate, error_bars
from figures.style import mark_empty, method_style
from nfl.metrics import pareto_front


def figure2(adapt: list[dict[str, Any]], init: list[dict[str, Any]], train: list[dict[str, Any]], subtitle: str, zero_loss: float | None = None) -> plt.Figure:
    """Left: validation loss curves; middle: init time vs parameters; right: step time vs parameters."""
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.6))
    draw_loss_curves(left, adapt, zero_loss)
    left.set_title("Validation loss (mean, 95% band)")
    draw_cost_vs_params(middle, init, "Initialisation time", "model")
    draw_cost_vs_params(right, train, "Training-step time", "step")
    handles = {}
    for ax in (left, middle, right):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(len(handles), 12), bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"Figure 2 — {subtitle}")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _draw_front(ax: plt.Axes, points: list[tuple[float, float, Point]], xlabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel("min validation MSE (mean ± 95% CI)")
    if not points:
        return mark_empty(ax)
    for x, _, p in points:
        style = method_style(p.method)
        ax.errorbar(x, p.mean, yerr=error_bars([p]), color=style["color"], marker=style["marker"], ms=7, capsize=3, label=style["label"], ls="none")
    front = pareto_front([(x, y, p) for x, y, p in points])
    ax.plot([f[0] for f in front], [f[1] for f in front], color="0.3", lw=1, ls="--", zorder=0, label="Pareto front")
    for i, (x, y, p) in enumerate(front):  # alternate above / below: front points often crowd
        ax.annotate(method_style(p.method)["label"], (x, y), textcoords="offset points", xytext=(5, 5 if i % 2 else -11), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")


def pareto_figure(adapt: list[dict[str, Any]], train: list[dict[str, Any]], subtitle: str) -> plt.Figure:
    """Minimum validation loss against trainable parameters (left) and against step time (right);
    the non-dominated methods joined by the Pareto front. Diverged runs are left out."""
    quality = aggregate(adapt, lambda r: r["summary"]["min_val_loss"])
    step_ms = {(p.method, p.rank): p.median for p in timing_points(train)}
    fig, (by_params, by_time) = plt.subplots(1, 2, figsize=(12, 4.6))
    _draw_front(by_params, [(p.params, p.mean, p) for p in quality], "trainable parameters")
    by_params.set_title("Adaptability vs size")
    timed = [(step_ms[(p.method, p.rank)], p.mean, p) for p in quality if (p.method, p.rank) in step_ms]
    _draw_front(by_time, timed, "training-step time (ms, median)")
    by_time.set_title("Adaptability vs speed")
    handles = dict(zip(*reversed(by_params.get_legend_handles_labels())))
    fig.legend(handles.values(), handles.keys(), loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"The trade-off — {subtitle}")
    fig.tight_layout()
    return fig
