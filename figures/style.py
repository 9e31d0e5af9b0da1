"""One look for every figure: a fixed colour and marker per method, kept across all figures and
unchanged when a method is registered or removed; labels in mathtext; plain tick labels on log
axes that span less than a decade."""

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
from matplotlib import ticker  # noqa: E402

import adapters  # noqa: E402


def method_style(name: str) -> dict[str, str]:
    """Colour, marker and display label (mathtext) of a registered method: what its own file
    declares (adapters/<method>.py), so no method's look depends on which others are registered."""
    spec = adapters.get(name)
    return {"color": spec.color, "marker": spec.marker, "label": spec.tex_label}


def method_order(name: str) -> tuple[int, str]:
    """A method's place in every figure's draw order and key: registration order (built-ins first,
    as adapters/__init__.py lists them), whatever order the records came in, so that a figure drawn
    again from the same records is the same file."""
    return adapters.registration_order(name)


def interval_wording(n: int) -> str:
    """What the intervals drawn over ``n`` seeds are (figures.records.aggregate: positive values as a
    geometric mean with a ×/÷ 95% interval), or none for one seed."""
    return "geometric mean ×/÷ 95% CI" if n > 1 else "one seed, no interval"


def mark_empty(ax: plt.Axes, why: str = "no finite runs to show") -> None:
    """Say so on an axes that has nothing to draw (every run diverged, or none was timed)."""
    ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", color="firebrick")


class _PlainNumbers(ticker.Formatter):
    """A log axis's labels as plain numbers ("0.04", "300", "2") from 0.0001 to 10,000, where
    matplotlib writes "4×10⁻²", "3×10²": short labels that do not run into each other when an
    axis of one or two decades labels its minor ticks. The ticks labelled are the default's own;
    values outside that range keep their powers of ten."""

    def __init__(self, inner: ticker.Formatter):
        self.inner = inner

    def set_axis(self, axis) -> None:  # noqa: ANN001 (matplotlib's Axis)
        super().set_axis(axis)
        self.inner.set_axis(axis)

    def set_locs(self, locs) -> None:  # noqa: ANN001
        super().set_locs(locs)
        self.inner.set_locs(locs)

    def __call__(self, x: float, pos: int | None = None) -> str:
        text = self.inner(x, pos)
        return f"{x:g}" if text and 1e-4 <= abs(x) <= 1e4 else text


def plain_log_ticks(fig: plt.Figure) -> None:
    """Install :class:`_PlainNumbers` on every log axis of ``fig``."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                for which in ("major", "minor"):
                    current = axis.get_major_formatter() if which == "major" else axis.get_minor_formatter()
                    if not isinstance(current, _PlainNumbers):
                        setter = axis.set_major_formatter if which == "major" else axis.set_minor_formatter
                        setter(_PlainNumbers(current))


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


STABLE_METADATA = {".png": {"Software": None}, ".pdf": {"CreationDate": None, "Creator": None, "Producer": None}}


def save(fig: plt.Figure, stem: str | Path, note: str | None = None) -> list[Path]:
    """Write ``stem``.png and ``stem``.pdf, with ``note`` as a footnote; return both paths."""
    if note:
        fig.text(0.01, -0.01, note, fontsize=7, color="firebrick", ha="left", va="top", wrap=True)
    plain_log_ticks(fig)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:  # no creation date: the same records give the same bytes
        fig.savefig(path, bbox_inches="tight", metadata=STABLE_METADATA[path.suffix])
    plt.close(fig)
    return paths


apply_rc()
