"""Loss curves: one line per method, mean over seeds with a shaded 95% band, each line named at
its end, on an axis fitted to the adapters so that they can be told apart."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from figures.records import curves
from figures.style import mark_empty, method_order, method_style
from nfl.stats import mean_ci

CURVE_KEYS = {"train_loss": "training", "val_loss": "validation", "test_loss": "test"}
_LABEL_GAP = 0.055  # the least vertical distance between two end labels, in axes fractions


def curve_label(key: str, metric: str = "MSE") -> str:
    """What a history key is, in words ("test MSE", "test bits/byte")."""
    if key not in CURVE_KEYS:
        raise ValueError(f"no loss curve {key!r}; choose one of {', '.join(CURVE_KEYS)}")
    return f"{CURVE_KEYS[key]} {metric}"


def draw_loss_curves(
    ax: plt.Axes, records: Iterable[dict[str, Any]], zero_loss: float | None = None, key: str = "val_loss",
    metric: str = "MSE", reference: str = "predict zero",
) -> int:
    """``key`` of the histories (train_loss, val_loss or test_loss) against the step, on ``ax``.

    The y axis (log) spans the adapters' curves; full fine-tuning (dashed, its square at its end)
    and the ``reference`` level (``zero_loss``: the MLP's zero predictor, the GPT's unigram entropy),
    when they fall outside, are clipped and their values written at the edge. Validation and test
    losses sit at the steps they were measured (every ``eval_every``-th). Returns the number of seeds
    drawn, for the caption."""
    records = list(records)
    every = 1 if key == "train_loss" or not records else records[0]["history"].get("eval_every", 1)
    grouped = curves(records, key)
    if not grouped:
        mark_empty(ax)
        return 0
    means, ends = {}, []
    for method, runs in sorted(grouped.items(), key=lambda item: method_order(item[0])):
        style = method_style(method)
        mean, half = mean_ci(runs)
        steps = np.arange(runs.shape[1]) * every + (1 if key == "train_loss" else 0)  # train_loss[i] is step i + 1's
        full = method == "full"
        ax.plot(steps, mean, color=style["color"], label=style["label"], lw=1.6, ls="--" if full else "-",
                marker=style["marker"] if full else None, markevery=[-1], ms=6)
        if len(runs) > 1:
            ax.fill_between(steps, np.maximum(mean - half, 1e-12), mean + half, color=style["color"], alpha=0.06, lw=0)
        means[method] = mean
        ends.append((steps[-1], mean[-1], method))
    adapters_only = [m for k, m in means.items() if k != "full"] or list(means.values())
    low, high = min(float(m.min()) for m in adapters_only), max(float(m.max()) for m in adapters_only)
    pad = (high / low) ** 0.06 if high > low else 1.05
    ax.set_yscale("log")
    ax.set_ylim(low / pad, high * pad)
    _clipped_note(ax, "full", means.get("full"), low / pad, high * pad)
    if zero_loss is not None:
        ax.axhline(zero_loss, color="grey", lw=1, ls=":", label=reference)
        _clipped_note(ax, reference, None if low / pad <= zero_loss <= high * pad else np.array([zero_loss]),
                      low / pad, high * pad)
    end_labels(ax, [e for e in ends if low / pad <= e[1] <= high * pad])
    ax.set_xlabel("adaptation step")
    ax.set_ylabel(f"{curve_label(key, metric)}, shifted task")
    return max(len(runs) for runs in grouped.values())


def _clipped_note(ax: plt.Axes, name: str, values: np.ndarray | None, low: float, high: float) -> None:
    """Where a reference curve leaves the axis, say where it went: "Full FT ↓ 0.0027 at the end"."""
    if values is None or low <= values[-1] <= high:
        return
    label = method_style(name)["label"] if name == "full" else name
    below = values[-1] < low
    text = f"{label} {'↓' if below else '↑'} {values[-1]:.3g}" + (" at the end" if values.size > 1 else "")
    ax.annotate(text, (0.5, 0.02 if below else 0.98), xycoords="axes fraction", ha="center",
                va="bottom" if below else "top", fontsize=8, color="0.2",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85})


def end_labels(ax: plt.Axes, ends: list[tuple[float, float, str]]) -> None:
    """Each line's name right of its last point (x, y, method), pushed apart so that no two overlap
    and joined to its point by a thin line of its colour (log y axis)."""
    if not ends:
        return
    last = max(x for x, _, _ in ends)
    ax.set_xlim(None, last * 1.22)
    low, high = (np.log10(v) for v in ax.get_ylim())
    placed = sorted(((np.log10(y) - low) / (high - low), y, m) for _, y, m in ends)
    positions: list[float] = []
    for frac, _, _ in placed:
        positions.append(max(frac, positions[-1] + _LABEL_GAP) if positions else max(frac, 0.02))
    overflow = positions[-1] - 0.98
    if overflow > 0:  # pushed off the top: shift everything down, keeping the gaps
        positions = [p - overflow for p in positions]
    for (_, y, method), pos in zip(placed, positions):
        style = method_style(method)
        ax.annotate(style["label"], (last, y), xytext=(last * 1.03, 10 ** (low + pos * (high - low))),
                    textcoords="data", fontsize=7, color=style["color"], va="center",
                    arrowprops={"arrowstyle": "-", "color": style["color"], "lw": 0.5, "alpha": 0.6})


def loss_curves_figure(
    records: list[dict[str, Any]], zero_loss: float | None = None, title: str = "", key: str = "val_loss",
    metric: str = "MSE", reference: str = "predict zero",
) -> plt.Figure:
    """A figure of :func:`draw_loss_curves` with the legend outside the axes."""
    fig, ax = plt.subplots(figsize=(7.4, 4.6))
    seeds = draw_loss_curves(ax, records, zero_loss, key, metric, reference)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    band = "mean, 95% band" if seeds > 1 else "one seed"
    label = curve_label(key, metric)
    ax.set_title(f"Adaptation to the shifted task: {label} ({band})" + (f"\n{title}" if title else ""))
    return fig
