"""The claims' figures: per shift family, each method's test loss at its tuned learning rate (no free
lunch), and each method's rank on the MLP against its rank on the GPT (does the toy transfer?).

One panel per shift family, the methods in the same order and colours in every panel, so a reader
sees at a glance whether the ranking changes with the shift. Geometric mean over seeds with its ×/÷
95% interval (the claims' own log scale).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from figures.records import aggregate, error_bars
from figures.style import mark_empty, method_style
from nfl.claims import log_losses, ranks


def no_free_lunch_figure(by_shift: dict[str, list[dict[str, Any]]], title: str) -> plt.Figure:
    """``by_shift``: shift family -> its quality records at each method's tuned learning rate."""
    fig, axes = plt.subplots(1, len(by_shift), figsize=(3.6 * len(by_shift), 3.4), sharey=True, squeeze=False)
    order = list(dict.fromkeys(r["method"] for records in by_shift.values() for r in records))
    for ax, (shift, records) in zip(axes[0], by_shift.items(), strict=True):
        points = {p.method: p for p in aggregate(records, lambda r: r["summary"]["test_loss"])}
        shown = [m for m in order if m in points]
        if not shown:
            mark_empty(ax)
        for x, method in enumerate(shown):
            style = method_style(method)
            ax.errorbar([x], [points[method].mean], yerr=error_bars([points[method]]), fmt=style["marker"],
                        color=style["color"], capsize=3)
        ax.set_xticks(range(len(shown)), [method_style(m)["label"] for m in shown], rotation=60, ha="right")
        ax.set_yscale("log")
        ax.set_title(shift.replace("_", "-"))
    axes[0][0].set_ylabel("test loss at tuned lr\n(geometric mean ×/÷ 95% CI over seeds)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def rank_transfer_figure(mlp_by_shift: dict[str, list[dict[str, Any]]], gpt: list[dict[str, Any]],
                         title: str) -> plt.Figure:
    """Per MLP shift family, each method's rank by tuned test loss on the MLP (x) against its rank on
    the GPT (y), over the methods both have (nfl.claims.ranks); on the diagonal the ranking carried over.
    ``mlp_by_shift``: shift family -> the MLP's records at each method's tuned lr; ``gpt``: the GPT's."""
    fig, axes = plt.subplots(1, len(mlp_by_shift), figsize=(3.6 * len(mlp_by_shift), 3.6), squeeze=False)
    gpt_losses = log_losses(gpt)
    for ax, (shift, records) in zip(axes[0], mlp_by_shift.items(), strict=True):
        mlp_losses = log_losses(records)
        common = [m for m in mlp_losses if m in gpt_losses]
        if len(common) < 2:
            mark_empty(ax, "fewer than 2 methods on both testbeds")
            continue
        on_mlp, on_gpt = ranks({m: mlp_losses[m] for m in common}), ranks({m: gpt_losses[m] for m in common})
        ax.plot([1, len(common)], [1, len(common)], color="0.6", linestyle="--", linewidth=1, zorder=0)
        for method in common:
            style = method_style(method)
            ax.plot([on_mlp[method]], [on_gpt[method]], style["marker"], color=style["color"])
            ax.annotate(style["label"], (on_mlp[method], on_gpt[method]), xytext=(4, 3), textcoords="offset points",
                        fontsize=7)
        ax.set_xticks(range(1, len(common) + 1))
        ax.set_yticks(range(1, len(common) + 1))
        ax.set_xlabel(f"rank on the MLP, {shift.replace('_', '-')} (1 = lowest loss)")
        ax.set_title(shift.replace("_", "-"))
    axes[0][0].set_ylabel("rank on the GPT (1 = lowest loss)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
