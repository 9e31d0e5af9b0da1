"""One look for every figure: a colour and a marker per method, kept across all figures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_BACKEND = os.environ.pop("MPLBACKEND", None)  # read before matplotlib's import, which fails on a bad one

import matplotlib  # noqa: E402
import matplotlib.rcsetup  # noqa: E402

if _BACKEND:
    try:
        matplotlib.rcsetup.validate_backend(_BACKEND)
        os.environ["MPLBACKEND"] = _BACKEND
    except ValueError:
        print(f"note: MPLBACKEND={_BACKEND!r} is not a matplotlib backend; drawing with Agg", file=sys.stderr)
matplotlib.use("Agg")  # figures are files; never need a display

import matplotlib.pyplot as plt  # noqa: E402

import adapters  # noqa: E402

_MARKERS = "osD^v<>ph*XP8"
_FULL_COLOUR = "black"


def method_style(name: str) -> dict[str, str]:
    """Colour, marker and display label of a registered method, stable across figures."""
    order = [n for n in adapters.names() if n != "full"]
    if name == "full":
        return {"color": _FULL_COLOUR, "marker": "s", "label": adapters.get(name).label}
    i = order.index(name)
    colour = plt.get_cmap("tab10" if len(order) <= 10 else "tab20")(i % (10 if len(order) <= 10 else 20))
    return {"color": matplotlib.colors.to_hex(colour), "marker": _MARKERS[i % len(_MARKERS)], "label": adapters.get(name).label}


def mark_empty(ax: plt.Axes, why: str = "no finite runs to show") -> None:
    """Say so on an axes that has nothing to draw (every run diverged, or none was timed)."""
    ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", color="firebrick")


def apply_rc() -> None:
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "font.size": 9,
        }
    )


def save(fig: plt.Figure, stem: str | Path, note: str | None = None) -> list[Path]:
    """Write ``stem``.png and ``stem``.pdf, with ``note`` as a footnote; return both paths."""
    if note:
        fig.text(0.01, -0.01, note, fontsize=7, color="firebrick", ha="left", va="top", wrap=True)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return paths


apply_rc()
