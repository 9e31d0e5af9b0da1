"""Validation-loss curves: one line per method, mean over seeds with a shaded 95% band."""

from __future__ import annotations

from typing import Any, Iterable

import matplotlib.pyplot as plt
import numpy as np

from figures.records import curves
from figures.style import mark_empty, method_style
from nfl.stats import mean_ci


def draw_loss_curves(ax: plt.Axes, records: Iterable[dict[str, Any]], zero_loss: float | None = None, key: str = "val_loss") -> None:
    """The histories' ``key`` (val_loss or test_loss) vs step on ``ax`` (log y), full fine-tuning dashed."""
    grouped = curves(records, key)
    if not grouped:
        mark_empty(ax)
    for method, runs in grouped.items():
        style = method_style(method)
        mean, half = mean_ci(runs)
        steps = np.arange(runs.shape[1])
        ax.plot(steps, mean, color=style["color"], label=style["label"], lw=1.6, ls="--" if method == "full" else "-")
        if len(runs) > 1:
            ax.fill_between(steps, np.maximum(mean - half, 1e-12), mean + half, color=style["color"], alpha=0.15, lw=0)
    if zero_loss is not None:
        ax.axhline(zero_loss, color="grey", lw=1, ls=":", label="predict zero")
    ax.set_yscale("log")
    ax.set_xlabel("adaptation step")
    ax.set_ylabel(f"{'test' if key == 'test_loss' else 'validation'} MSE, shifted task")


def loss_curves_figure(records: list[dict[str, Any]], zero_loss: float | None = None, title: str = "", key: str = "val_loss") -> plt.Figure:
    """A figure of :func:`draw_loss_curves` with the legend outside the axes."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    draw_loss_curves(ax, records, zero_loss, key)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title("Adaptation to the shifted task" + (f"\n{title}" if title else ""))
    return fig
