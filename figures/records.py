"""Grouping result records for plotting: per (method, rank), a summary over seeds with its 95% interval.

Positive values (losses, gradient norms, ratios) are log-normal-ish over seeds: their summary is the
geometric mean with a ×/÷ 95% interval (the t-interval of the logs), which never reaches below zero,
so a log axis draws it whole. Values that can be zero or negative keep the arithmetic mean ± t-interval;
where such an interval reaches below zero a log axis cannot draw it, and :func:`clipped_note` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nfl.stats import geometric_ci, mean_ci


@dataclass(frozen=True)
class Point:
    """One (method, rank) of a study: a value's summary over seeds (the geometric mean where every
    value is positive, else the mean) and its 95% interval [low, high] (the point itself for one seed)."""

    method: str
    rank: int | None
    params: int
    mean: float
    low: float
    high: float
    n: int
    geometric: bool


def diverged(record: dict[str, Any]) -> bool:
    return record.get("summary", {}).get("diverged_at") is not None


def diverged_note(records: Iterable[dict[str, Any]]) -> str | None:
    """A line naming the runs left out of a figure because they diverged, or None."""
    gone = [f"{r['method']} r={r['rank']} seed {r['seed']} (step {r['summary']['diverged_at']})"
            for r in records if diverged(r)]
    return f"left out, diverged (loss not finite): {', '.join(gone)}" if gone else None


def aggregate(records: Iterable[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> list[Point]:
    """One Point per (method, rank), in first-seen order, of ``value(record)`` over its seeds;
    diverged runs are left out (see :func:`diverged_note`)."""
    groups: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
    for record in (r for r in records if not diverged(r)):
        groups.setdefault((record["method"], record["rank"]), []).append(record)
    points = []
    for (method, rank), group in groups.items():
        params = group[0]["summary"]["trainable_params"]
        points.append(summarise(method, rank, params, [value(r) for r in group]))
    return points


def summarise(method: str, rank: int | None, params: int, values: list[float]) -> Point:
    """A :class:`Point` of ``values``: geometric with ×/÷ interval if all are positive, else arithmetic."""
    if all(v > 0 for v in values):
        g = geometric_ci(values)
        return Point(method, rank, params, g.mean, g.low, g.high, g.n, True)
    mean, half = mean_ci(values)
    return Point(method, rank, params, float(mean), float(mean - half), float(mean + half), len(values), False)


def error_bars(points: Iterable[Point]) -> np.ndarray:
    """(2, N) lower/upper error-bar lengths from each point to its interval's ends, uncut (a lower
    end at or below zero is where a log axis stops drawing: see :func:`clipped_note`)."""
    points = list(points)
    return np.array([[p.mean - p.low for p in points], [p.high - p.mean for p in points]]).reshape(2, len(points))


def clipped_note(points: Iterable[Point]) -> str | None:
    """A line naming the points whose interval reaches to or below zero (cut by a log axis), or None."""
    cut = [f"{p.method}{'' if p.rank is None else f' r={p.rank}'} [{p.low:.3g}, {p.high:.3g}]"
           for p in points if p.low <= 0]
    return f"intervals reaching below zero, cut at the log axis: {', '.join(cut)}" if cut else None


def by_method(points: Iterable[Point]) -> dict[str, list[Point]]:
    """method -> its points sorted by rank."""
    out: dict[str, list[Point]] = {}
    for p in points:
        out.setdefault(p.method, []).append(p)
    return {m: sorted(ps, key=lambda p: -1 if p.rank is None else p.rank) for m, ps in out.items()}


def curves(records: Iterable[dict[str, Any]], key: str = "val_loss") -> dict[str, np.ndarray]:
    """method -> array (seeds x steps) of the histories' ``key``, in first-seen order; diverged
    runs are left out."""
    grouped: dict[str, list[list[float]]] = {}
    for record in (r for r in records if not diverged(r)):
        grouped.setdefault(record["method"], []).append(record["history"][key])
    return {method: np.asarray(c, dtype=float) for method, c in grouped.items()}
