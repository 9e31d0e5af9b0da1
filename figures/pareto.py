"""Figure 2 (loss curves; init and train time vs parameters) and the Pareto view of the trade-off."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from figures.curves import curve_label, draw_loss_curves
from figures.efficiency import draw_cost_vs_params, timing_points
from figures.records import Point, aggregate, error_bars
from figures.style import interval_wording, mark_empty, method_order, method_style
from nfl.pareto import pareto_front

QUALITY_KEYS = {"min_val_loss": "min validation {metric}", "test_loss": "test {metric} at the selected step"}
_DODGE = 1.1  # points at equal x are spread by this factor apart on the log x axis
_LABEL_SPACING = 0.15  # decades of x between two labelled front points


def figure2(
    adapt: list[dict[str, Any]], init: list[dict[str, Any]], train: list[dict[str, Any]], subtitle: str,
    zero_loss: float | None = None, key: str = "test_loss", metric: str = "MSE", reference: str = "predict zero",
) -> plt.Figure:
    """Left: loss curves (``key``: train_loss, val_loss or test_loss); middle: init time vs
    parameters; right: step time vs parameters."""
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 5.0), gridspec_kw={"width_ratios": [1.15, 1, 1]})
    seeds = draw_loss_curves(left, adapt, zero_loss, key, metric, reference)
    band = "mean, 95% band" if seeds > 1 else "one seed"
    label = curve_label(key, metric)
    left.set_title(f"{label[0].upper()}{label[1:]} ({band})")
    draw_cost_vs_params(middle, init, "Initialisation time", "model")
    draw_cost_vs_params(right, train, "Training-step time", "step")
    handles = {}
    for ax in (left, middle, right):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(len(handles), 12),
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"Figure 2 — {subtitle}")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def dodged(xs: list[float]) -> list[float]:
    """``xs`` with the points that share an x spread symmetrically around it (log axis), so none
    hides another."""
    out = list(xs)
    for x in set(xs):
        same = [i for i, v in enumerate(xs) if v == x]
        for j, i in enumerate(same):
            out[i] = x * _DODGE ** (j - (len(same) - 1) / 2)
    return out


def _draw_front(ax: plt.Axes, points: list[tuple[float, float, Point]], xlabel: str, ylabel: str) -> bool:
    """Every point keyed by its method's colour and marker (points at equal x spread sideways),
    the non-dominated ones joined and labelled. Returns whether any point was spread."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if not points:
        mark_empty(ax)
        return False
    points = sorted(points, key=lambda point: (method_order(point[2].method), point[2].rank or 0))
    xs = dodged([x for x, _, _ in points])
    for x, (_, _, p) in zip(xs, points):
        style = method_style(p.method)
        ax.errorbar(x, p.mean, yerr=error_bars([p]), color=style["color"], marker=style["marker"], ms=7, capsize=3,
                    label=style["label"], ls="none")
    # The front on the true coordinates (equal parameters and a lower loss dominate), drawn where the
    # points are drawn (spread sideways).
    drawn_at = {id(p): x for x, (_, _, p) in zip(xs, points)}
    front = [(drawn_at[id(p)], y, p) for _, y, p in pareto_front(points)]
    ax.plot([f[0] for f in front], [f[1] for f in front], color="0.3", lw=1, ls="--", zorder=0, label="Pareto front")
    labelled = -np.inf
    for i, (x, y, p) in enumerate(front):  # alternate above / below; where they crowd, the key names them
        if np.log10(x) - labelled < _LABEL_SPACING:
            continue
        labelled = np.log10(x)
        ax.annotate(method_style(p.method)["label"], (x, y), textcoords="offset points",
                    xytext=(6, 5 if i % 2 else -11), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    return xs != [x for x, _, _ in points]


def pareto_figure(
    adapt: list[dict[str, Any]], train: list[dict[str, Any]], subtitle: str, key: str = "test_loss",
    metric: str = "MSE",
) -> plt.Figure:
    """The quality ``key`` of each method against trainable parameters (left) and against step
    time (right); the non-dominated methods joined by the Pareto front. Diverged runs are left out."""
    quality = aggregate(adapt, lambda r: r["summary"][key])
    step_ms = {(p.method, p.rank): p.fastest for p in timing_points(train)}
    seeds = max((p.n for p in quality), default=0)
    ylabel = f"{QUALITY_KEYS.get(key, key).format(metric=metric)} ({interval_wording(seeds)})"
    fig, (by_params, by_time) = plt.subplots(1, 2, figsize=(12, 4.8))
    spread = _draw_front(by_params, [(p.params, p.mean, p) for p in quality], "trainable parameters", ylabel)
    by_params.set_title("Adaptability vs size")
    timed = [(step_ms[(p.method, p.rank)], p.mean, p) for p in quality if (p.method, p.rank) in step_ms]
    spread |= _draw_front(by_time, timed, "training-step time (ms, fastest round)", ylabel)
    by_time.set_title("Adaptability vs speed")
    handles = dict(zip(*reversed(by_params.get_legend_handles_labels())))
    fig.legend(handles.values(), handles.keys(), loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"The trade-off — {subtitle}")
    if spread:
        fig.text(0.5, -0.01, f"points at equal x are drawn ×{_DODGE:g} apart so that none hides another",
                 ha="center", fontsize=7, color="0.35")
    fig.tight_layout()
    return fig

