"""Rank and budget: minimum validation loss and forgetting against trainable parameters."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from figures.records import aggregate, by_method, error_bars
from figures.style import interval_wording, method_style

_PANELS = (
    # (value, reference level, title, the reference's label)
    ("test_loss", "shifted_test_loss_before", "Adaptability: test MSE at the selected step, shifted task",
     "pretrained model, before adaptation"),
    ("forgetting_base_test_loss", "pretrained_base_val_loss", "Forgetting: base-task test MSE after adaptation",
     "pretrained model (nothing forgotten)"),
)


def _draw_panel(
    ax: plt.Axes, records: list[dict[str, Any]], key: str, reference: str, title: str, reference_label: str
) -> None:
    """One line per method over its ranks (mean ± 95% CI over seeds), full fine-tuning a lone
    marker, and the reference level (mean over seeds) dotted."""
    for method, points in by_method(aggregate(records, lambda r: r["summary"][key])).items():
        style = method_style(method)
        ax.errorbar(
            [p.params for p in points], [p.mean for p in points], yerr=error_bars(points),
            color=style["color"], marker=style["marker"], ms=4 if len(points) > 1 else 8, lw=1.3, capsize=2,
            ls="-" if len(points) > 1 else "none", label=style["label"],
        )
    level = float(np.mean([r["summary"][reference] for r in records]))
    ax.axhline(level, color="0.4", ls=":", lw=1.2)
    ax.annotate(
        reference_label, (0.99, level), xycoords=("axes fraction", "data"), xytext=(0, -4), textcoords="offset points",
        ha="right", va="top", fontsize=8, color="0.3",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("trainable parameters (each line: one method, rank growing to the right)")
    seeds = len({r["seed"] for r in records})
    ax.set_ylabel(f"test MSE ({interval_wording(seeds)})")
    ax.set_title(title)


def rank_figure(records: list[dict[str, Any]], title: str = "") -> plt.Figure:
    """Left: the shifted-task test loss at the selected step; right: the base-task loss after adaptation
    (forgetting); both against trainable parameters, every method over its ranks."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.4))
    for ax, panel in zip(axes, _PANELS):
        _draw_panel(ax, records, *panel)
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="center left", bbox_to_anchor=(1.0, 0.5))
    seeds = len({r["seed"] for r in records})
    fig.suptitle(f"Rank and budget — {title}, {seeds} seed(s)")
    fig.tight_layout()
    return fig
