"""The anatomy of each update: ΔW heatmaps with their spectra, and ΔW's place in W0's spectrum."""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from figures.records import aggregate, diverged, error_bars
from figures.style import interval_wording, mark_empty, method_style

_SUBSPACES = (
    ("phi_top", "W0's top-r left singular vectors (PiSSA's start)", "0.2"),
    ("phi_bottom", "W0's bottom-r left singular vectors (MiLoRA's start)", "0.55"),
    ("phi_random", "a random r-dimensional subspace", "0.85"),
)
_BELOW_ROUNDING = 30  # the spectra's y axis goes this far below the rounding level
_CLIP_PERCENTILE = 99  # the shared colour scale ends at this percentile of |ΔW| over all panels


def first_seed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The finite records of the smallest seed, one per (method, rank), in their order."""
    finite = [r for r in records if not diverged(r)]
    seed = min((r["seed"] for r in finite), default=None)
    return [r for r in finite if r["seed"] == seed]


def _panel_title(record: dict[str, Any]) -> str:
    rank = "" if record["rank"] is None else f" r={record['rank']}"
    return f"{method_style(record['method'])['label']}{rank}"


def _draw_heatmap(ax: plt.Axes, record: dict[str, Any], vmax: float) -> Any:
    image = ax.imshow(np.asarray(record["delta_weight"]), cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    title = f"{_panel_title(record)}\n‖ΔW‖_F = {record['summary']['delta']:.3g}"
    ax.set_title(title, fontsize=8, color=method_style(record["method"])["color"])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    return image


def _draw_spectrum(ax: plt.Axes, record: dict[str, Any], floor: float) -> None:
    """sigma_i(ΔW) on a log axis (values under ``floor`` drawn at it), the rank bound dashed and the
    rounding level dotted: what lies under it is float rounding, not rank."""
    sigma = np.maximum(np.asarray(record["singular_values"]), floor)
    style = method_style(record["method"])
    ax.semilogy(np.arange(1, sigma.size + 1), sigma, color=style["color"], marker=style["marker"], ms=2.5, lw=1)
    bound = record["summary"]["rank_bound"]
    ax.axvline(bound + 0.5, color="0.25", ls="--", lw=0.9)
    ax.axhline(record["summary"]["rounding_level"], color="0.45", ls=":", lw=0.9)
    right = bound > sigma.size / 2
    ax.annotate(
        f"bound {bound}", (bound + 0.5, 0.97), xycoords=("data", "axes fraction"), xytext=(-2 if right else 2, 0),
        textcoords="offset points", ha="right" if right else "left", va="top", fontsize=7,
    )
    ax.set_xlim(0, sigma.size + 1)
    ax.set_xlabel("i", fontsize=8, labelpad=1)
    ax.tick_params(labelsize=7)


def anatomy_figure(records: list[dict[str, Any]], title: str = "") -> plt.Figure:
    """Per method (first seed): ΔW on one symmetric diverging colour scale shared by every panel,
    and below it the singular values of ΔW (log scale, shared axis) with the rank bound dashed."""
    shown = first_seed(records)
    if not shown:
        fig, ax = plt.subplots(figsize=(6, 2))
        mark_empty(ax)
        ax.axis("off")
        return fig
    cols = min(len(shown), 6)
    blocks = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(
        2 * blocks,
        cols,
        figsize=(2.0 * cols + 1.0, 3.7 * blocks + 0.7),
        gridspec_kw={"height_ratios": [1.3, 1] * blocks},
        squeeze=False,
        layout="constrained",
    )
    entries = np.concatenate([np.ravel(r["delta_weight"]) for r in shown])
    vmax = float(np.percentile(np.abs(entries), _CLIP_PERCENTILE)) or 1.0
    floor = min(r["summary"]["rounding_level"] for r in shown) / _BELOW_ROUNDING
    spectra = axes[1::2, :].ravel()
    for ax in spectra[1:]:
        ax.sharey(spectra[0])
    for i, record in enumerate(shown):
        heat, spectrum = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        image = _draw_heatmap(heat, record, vmax)
        _draw_spectrum(spectrum, record, floor)
        if i % cols:
            spectrum.tick_params(labelleft=False)
        else:
            spectrum.set_ylabel("σ_i(ΔW)", fontsize=8)
    spectra[0].set_ylim(floor / 2, None)
    for i in range(len(shown), blocks * cols):
        axes[2 * (i // cols), i % cols].axis("off")
        axes[2 * (i // cols) + 1, i % cols].axis("off")
    label = f"ΔW entry (one scale, clipped at the {_CLIP_PERCENTILE}th percentile of |ΔW|)"
    fig.colorbar(image, ax=axes[0::2, :].ravel().tolist(), shrink=0.8, extend="both", label=label)
    fig.suptitle(
        f"The anatomy of each update: ΔW = W' - W0 and its singular values\n"
        f"dashed: the method's rank bound; dotted: float rounding level — {title}, seed {shown[0]['seed']}",
        fontsize=10,
    )
    return fig


def subspace_figure(records: list[dict[str, Any]], title: str = "") -> plt.Figure:
    """Left: phi of ΔW's top-r left singular subspace with W0's top-r, bottom-r and a random one;
    right: the amplification factor ||ΔW||_F / ||U^T W0 V||_F. Mean ± 95% CI over seeds."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.4), gridspec_kw={"width_ratios": [1.6, 1]})
    width = 0.27
    for j, (key, label, colour) in enumerate(_SUBSPACES):
        points = aggregate(records, lambda r, key=key: r["summary"][key])
        xs = np.arange(len(points)) + (j - 1) * width
        left.bar(
            xs,
            [p.mean for p in points],
            width,
            yerr=error_bars(points),
            color=colour,
            edgecolor="0.1",
            lw=0.5,
            capsize=2,
            label=label,
        )
    amplified = aggregate(records, lambda r: r["summary"]["amplification"])
    for x, p in enumerate(amplified):  # points, not bars: a bar's length means nothing on a log axis
        style = method_style(p.method)
        right.errorbar(x, p.mean, yerr=error_bars([p]), color=style["color"], marker=style["marker"], ms=8, capsize=3,
                       ls="none")
    ranks = {r["summary"]["subspace_rank"] for r in records if not diverged(r)}
    r_text = f"r = {max(ranks, default='-')}" if len(ranks) <= 1 else f"r = min({max(ranks)}, rank bound)"
    if not amplified:
        for ax in (left, right):
            mark_empty(ax)
    for ax in (left, right):
        ax.set_xticks(
            np.arange(len(amplified)),
            [f"{method_style(p.method)['label']}" for p in amplified],
            rotation=45,
            ha="right",
        )
        for tick, p in zip(ax.get_xticklabels(), amplified):
            tick.set_color(method_style(p.method)["color"])
    left.set_ylim(0, 1.05)
    left.set_ylabel("φ = ‖UᵀU'‖²_F / r")
    left.set_title(f"Where ΔW's top-r left singular subspace U lies ({r_text})")
    left.legend(loc="upper right", title="U' =", alignment="left")
    right.set_yscale("log" if amplified else "linear")
    right.set_ylabel("‖ΔW‖_F / ‖UᵀW0V‖_F")
    right.set_title("Amplification factor (LoRA §7.3)")
    seeds = max((p.n for p in amplified), default=0)
    right.set_xlim(-0.6, len(amplified) - 0.4)
    fig.suptitle(f"ΔW in W0's spectrum (MiLoRA §5.3) — {title}, {seeds} seed(s), {interval_wording(seeds)}",
                 fontsize=10)
    fig.tight_layout()
    return fig
