"""Grouping result records for plotting: per (method, rank), mean and 95% CI over seeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from nfl.stats import mean_ci


@dataclass(frozen=True)
class Point:
    """One (method, rank) of a study: a value's mean over seeds and its 95% CI half-width."""

    method: str
    rank: int | None
    params: int
    mean: float
    half: float
    n: int


def diverged(record: dict[str, Any]) -> bool:
    return record.get("summary", {}).get("diverged_at") is not None


def diverged_note(records: Iterable[dict[str, Any]]) -> str | None:
    """A line naming the runs left out of a figure because they diverged, or None."""
    gone = [f"{r['method']} r={r['rank']} seed {r['seed']} (step {r['summary']['diverged_at']})" for r in records if diverged(r)]
    return f"left out, diverged (loss not finite): {', '.join(gone)}" if gone else None


def aggregate(records: Iterable[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> list[Point]:
    """One Point per (method, rank), in first-seen order, of ``value(record)`` over its seeds;
    diverged runs are left out (see :func:`diverged_note`)."""
    groups: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
    for record in (r for r in records if not diverged(r)):
        groups.setdefault((record["method"], record["rank"]), []).append(record)
    points = []
    for (method, rank), group in groups.items():
        mean, half = mean_ci([value(r) for r in group])
        points.append(Point(method, rank, group[0]["summary"]["trainable_params"], float(mean), float(half), len(group)))
    return points


def error_bars(points: Iterable[Point]) -> np.ndarray:
    """(2, N) lower/upper error-bar lengths: the CI half-width, none for a single seed, and the
    lower bar kept above zero so that log axes can draw it (a CI wider than its mean)."""
    points = list(points)
    half = np.array([p.half if p.n > 1 else 0.0 for p in points])
    mean = np.array([p.mean for p in points])
    return np.vstack([np.where(mean > 0, np.minimum(half, 0.9 * mean), half), half])


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
