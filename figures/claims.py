"""The no-free-lunch figure: per shift family, each method's test loss at its tuned learning rate.

One panel per shift family, the methods in the same order and colours in every panel, so a reader
sees at a glance whether the ranking changes with the shift. Geometric mean over seeds with its ×/÷
95% interval (the claims' own log scale).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from figures.records import aggregate, error_bars
from figures.style import mark_empty, method_style


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
