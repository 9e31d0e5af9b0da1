"""The Pareto front (minimise cost and loss) on hand-made points, and against its definition."""

from __future__ import annotations

import random

import pytest

from nfl.pareto import pareto_front


def test_dominated_points_are_dropped_and_the_front_is_sorted_by_cost() -> None:
    points = [
        (30, 0.1, "big"),
        (1, 0.9, "tiny"),
        (10, 0.5, "mid"),
        (12, 0.6, "worse than mid"),
        (40, 0.2, "worse than big"),
    ]
    assert pareto_front(points) == [(1, 0.9, "tiny"), (10, 0.5, "mid"), (30, 0.1, "big")]


def test_a_single_point_and_no_points() -> None:
    assert pareto_front([(5, 1.0, "only")]) == [(5, 1.0, "only")]
    assert pareto_front([]) == []


def test_ties_keep_the_better_of_the_other_coordinate() -> None:
    same_cost = [(10, 0.5, "a"), (10, 0.3, "b")]
    same_loss = [(20, 0.4, "c"), (10, 0.4, "d")]
    assert pareto_front(same_cost) == [(10, 0.3, "b")]
    assert pareto_front(same_loss) == [(10, 0.4, "d")]


def test_identical_points_do_not_dominate_each_other() -> None:
    points = [(10, 0.5, "LoRA"), (10, 0.5, "PiSSA"), (20, 0.5, "dominated"), (5, 0.9, "cheap")]
    assert pareto_front(points) == [(5, 0.9, "cheap"), (10, 0.5, "LoRA"), (10, 0.5, "PiSSA")]


def test_a_nan_is_an_error() -> None:
    with pytest.raises(ValueError, match="NaN"):
        pareto_front([(1, 0.5, "ok"), (2, float("nan"), "diverged")])


def dominated(p: tuple, q: tuple) -> bool:
    """q dominates p: no worse in both, better in one."""
    return q[0] <= p[0] and q[1] <= p[1] and (q[0], q[1]) != (p[0], p[1])


def test_agrees_with_the_definition_on_random_points_with_ties() -> None:
    rng = random.Random(0)
    for _ in range(200):
        # A coarse grid makes ties and duplicates common.
        points = [(rng.randint(0, 5), rng.randint(0, 5), i) for i in range(rng.randint(1, 12))]
        expected = sorted(
            (p for p in points if not any(dominated(p, q) for q in points)), key=lambda p: (p[0], p[1], p[2])
        )
        assert pareto_front(points) == expected
