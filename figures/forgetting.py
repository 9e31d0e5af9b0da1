"""Learning against forgetting ("LoRA Learns Less and Forgets Less", Biderman et al. 2024, Fig. 1 in
miniature): each method at its tuned learning rate as one point, the base task's loss after
adaptation (what it forgot) across, the shifted task's test loss (what it learnt) up; lower left is
better on both. The pretrained model, before any adaptation, is marked: every method starts there."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from figures.records import aggregate, error_bars
from figures.style import interval_wording, mark_empty, method_style

LEARNT = "test_loss"  # the shifted task's test loss at the step validation selected
FORGOT = "forgetting_base_test_loss"  # the base task's test loss after the last step


def learning_forgetting_figure(
    tuned: Iterable[dict[str, Any]], pretrained: tuple[float, float] | None, metric: str = "bits/byte",
    title: str = "",
) -> plt.Figure:
    """One point per (method, rank) of ``tuned`` (the records at each one's tuned lr), mean over seeds
    with 95% bars on both axes; ``pretrained`` = (base test loss, shifted test loss) before adapting."""
    tuned = list(tuned)
    learnt = {(p.method, p.rank): p for p in aggregate(tuned, lambda r: r["summary"][LEARNT])}
    forgot = {(p.method, p.rank): p for p in aggregate(tuned, lambda r: r["summary"][FORGOT])}
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    if not learnt:
        mark_empty(ax)
    ranks_per_method = {}
    for method, rank in learnt:
        ranks_per_method.setdefault(method, set()).add(rank)
    for key, y in learnt.items():
        x = forgot[key]
        style = method_style(key[0])
        label = style["label"] + (f" r={key[1]}" if len(ranks_per_method[key[0]]) > 1 else "")
        ax.errorbar(x.mean, y.mean, xerr=error_bars([x])[:, :1], yerr=error_bars([y])[:, :1], fmt=style["marker"],
                    color=style["color"], ms=7, capsize=2, lw=1, label=label)
    if pretrained is not None:
        ax.plot(*pretrained, marker="o", ms=11, mfc="none", mec="0.3", mew=1.5, ls="none",
                label="pretrained (no adaptation)")
    ax.set_xlabel(f"forgetting: base task (English) test {metric} after adaptation")
    ax.set_ylabel(f"learning: shifted task (code) test {metric}")
    seeds = max((p.n for p in learnt.values()), default=0)
    ax.set_title(f"{title}\n" * bool(title) + f"each method at its tuned lr; {interval_wording(seeds)}", fontsize=9)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    ax.margins(0.08)
    return fig


def pretrained_point(records: Iterable[dict[str, Any]]) -> tuple[float, float] | None:
    """(base test loss, shifted test loss) of the pretrained model, mean over the records' seeds."""
    by_seed = {}
    for record in records:
        summary = record["summary"]
        if summary.get("pretrained_base_test_loss") is not None and record["history"]["test_loss"]:
            by_seed[record["seed"]] = (summary["pretrained_base_test_loss"], record["history"]["test_loss"][0])
    return tuple(np.mean(list(by_seed.values()), axis=0)) if by_seed else None
