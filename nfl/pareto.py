"""The Pareto front of (cost, loss) points."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

Point = TypeVar("Point", bound=Sequence[Any])


def pareto_front(points: Iterable[Point]) -> list[Point]:
    """The points no other point dominates, minimising both cost and loss, sorted by cost.

    A point is a sequence ``(cost, loss, *labels)``. One point dominates another when it is no
    worse in both and better in one, so identical points never dominate each other and all stay.
    A NaN cost or loss is a ValueError: it cannot be compared.
    """
    ordered = sorted(points, key=lambda p: (p[0], p[1]))
    for p in ordered:
        if math.isnan(p[0]) or math.isnan(p[1]):
            raise ValueError(f"point {p!r} has a NaN cost or loss; a Pareto front needs comparable points")
    front: list[Point] = []
    for p in ordered:
        # ``front[-1]`` has the lowest loss so far, at a cost <= p's: p survives only by beating
        # that loss, or by being the same point.
        if not front or p[1] < front[-1][1] or (p[0], p[1]) == (front[-1][0], front[-1][1]):
            front.append(p)
    return front
