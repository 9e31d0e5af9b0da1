"""Learning-rate sensitivity: per method, validation and test loss against lr, and tuned lr vs sharpness."""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from figures.records import diverged
from figures.style import method_style
from nfl.selection import groups, interpolated_lr, lr_scores, tune
from nfl.stats import geometric_ci


def _curve(records: list[dict[str, Any]], key: str) -> tuple[list[float], np.ndarray, np.ndarray, np.ndarray]:
    """(lrs, geometric mean, low, high of its ×/÷ 95% interval) of ``summary[key]`` over seeds, at
    the lrs where no seed diverged."""
    by_lr: dict[float, list[float]] = {}
    bad = {r["lr"] for r in records if diverged(r)}
    for r in records:
        if r["lr"] not in bad:
            by_lr.setdefault(r["lr"], []).append(r["summary"][key])
    lrs = sorted(by_lr)
    stats = [geometric_ci(by_lr[lr]) for lr in lrs]
    return lrs, *(np.array([getattr(g, end) for g in stats]) for end in ("mean", "low", "high"))


def lr_figure(records: list[dict[str, Any]], title: str = "") -> plt.Figure:
    """One panel per (method, rank): validation (dashed) and test loss vs lr with seed bands, the
    tuned lr marked and the optimum between grid points (a parabola in log lr through the tuned
    point and its neighbours, nfl.selection.interpolated_lr); diverged grid points are left out."""
    grouped = groups(records)
    chosen = {(t.method, t.rank): t.lr for t in tune(records)}
    between = {key: interpolated_lr(lr_scores(mine)) for key, mine in grouped.items()}
    cols = min(4, len(grouped))
    rows = math.ceil(len(grouped) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False, sharey=True)
    for ax, (key, mine) in zip(axes.flat, grouped.items(), strict=False):  # spare axes are hidden below
        style = method_style(key[0])
        for field, ls, label in (("min_val_loss", "--", "validation (selects)"), ("test_loss", "-", "test (reports)")):
            lrs, mean, low, high = _curve(mine, field)
            ax.plot(lrs, mean, ls=ls, color=style["color"], marker=style["marker"], ms=3, label=label)
            ax.fill_between(lrs, low, high, color=style["color"], alpha=0.15, lw=0)
        if chosen[key] is not None:
            ax.axvline(chosen[key], color="0.3", lw=1, ls=":", label="tuned lr (grid)")
        if between[key] is not None and between[key] != chosen[key]:
            ax.axvline(between[key], color="0.3", lw=1, ls="-.", label="optimum between grid points")
        ax.set(xscale="log", yscale="log", title=f"{style['label']}" + ("" if key[1] is None else f" r={key[1]}"))
        ax.set_xlabel("adaptation lr")
    for ax in axes.flat[len(grouped):]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("MSE, shifted task")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Loss vs learning rate (geometric mean ×/÷ 95% CI over seeds) — {title}")
    fig.tight_layout()
    return fig


def sharpness_figure(points: list[tuple[str, float, float]], rho: float, title: str = "") -> plt.Figure:
    """Tuned lr against λ_max at initialisation (mean over seeds), one marker per method."""
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for method, sharpness, lr in points:
        style = method_style(method)
        ax.scatter(sharpness, lr, color=style["color"], marker=style["marker"], label=style["label"])
    ax.set(xscale="log", yscale="log", xlabel="λ_max of the Hessian at initialisation", ylabel="tuned lr")
    ax.set_title(f"Tuned lr vs sharpness, Spearman ρ = {rho:.2f}" + (f"\n{title}" if title else ""))
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.tight_layout()
    return fig
