"""Selection on validation, report on test: hand-made records, ties, a diverged grid point."""

from __future__ import annotations

import math

import pytest

from nfl.selection import at_tuned_lr, select_lr, selected_step, tune


def record(lr: float, seed: int, val: float | None, test: float | None = 0.5,
           diverged: int | None = None) -> dict:
    return {"method": "lora", "rank": 2, "seed": seed, "lr": lr,
            "summary": {"min_val_loss": val, "test_loss": test, "diverged_at": diverged}}


def test_the_lowest_mean_validation_loss_over_seeds_wins() -> None:
    records = [record(1e-3, 0, 0.30), record(1e-3, 1, 0.10), record(1e-2, 0, 0.15), record(1e-2, 1, 0.16)]
    assert select_lr(records) == 1e-2  # mean 0.155 beats 0.20, though 1e-3 has the single best seed


def test_a_diverged_grid_point_is_never_selected() -> None:
    records = [record(1e-1, 0, 0.01), record(1e-1, 1, None, None, diverged=7),
               record(1e-3, 0, 0.4), record(1e-3, 1, 0.4)]
    assert select_lr(records) == 1e-3
    assert select_lr([record(1e-1, 0, None, None, diverged=3)]) is None


def test_a_tie_goes_to_the_smaller_learning_rate() -> None:
    records = [record(1e-2, 0, 0.2), record(1e-3, 0, 0.2), record(1e-1, 0, 0.2)]
    assert select_lr(records) == 1e-3


def test_test_losses_never_select() -> None:
    records = [record(1e-3, 0, 0.2, test=0.9), record(1e-2, 0, 0.3, test=0.0)]
    assert select_lr(records) == 1e-3
    (tuned,) = tune(records)
    assert tuned.lr == 1e-3 and [r["summary"]["test_loss"] for r in tuned.records] == [0.9]
    assert at_tuned_lr(records) == records[:1]


def test_the_selected_step_is_the_first_argmin() -> None:
    assert selected_step([0.5, 0.2, 0.3, 0.2]) == 1
    assert selected_step([0.1, 0.2]) == 0


def test_the_interpolated_optimum_is_the_vertex_of_a_parabola_in_log_lr() -> None:
    from nfl.selection import interpolated_lr

    # log10 score = (log10 lr + 2.3)^2 - 1: the optimum at 10 ** -2.3, between the grid points 1e-2 and 3.16e-3
    scores = {lr: 10 ** ((math.log10(lr) + 2.3) ** 2 - 1) for lr in (1e-3, 10 ** -2.5, 1e-2, 10 ** -1.5)}
    assert interpolated_lr(scores) == pytest.approx(10 ** -2.3)
    assert interpolated_lr({1e-3: 0.1, 1e-2: 0.2}) == 1e-3  # at an edge: the selected point itself
    assert interpolated_lr({1e-3: 0.2, 1e-2: 0.1, 1e-1: None}) == 1e-2  # beside a diverged point
    assert interpolated_lr({1e-3: 0.2, 1e-2: 0.2, 1e-1: 0.2}) == 1e-3  # flat: no interior minimum


def test_a_selected_edge_extends_the_grid_by_its_own_step_until_interior_or_diverged() -> None:
    from nfl.config import log_grid
    from nfl.selection import extension, grid_lattice

    lattice = grid_lattice(log_grid(1e-4, 1e-1, 7))
    assert extension({1e-2: 0.3, 0.0316: 0.2, 0.1: 0.1}, lattice) == 0.316
    assert extension({0.1: 0.3, 0.316: 0.1}, lattice) == 1.0  # the lattice's point, not 0.316 x 3.16 = 0.999
    assert extension({1e-4: 0.1, 3.16e-4: 0.2}, lattice) == 3.16e-5
    assert extension({1e-2: 0.3, 0.1: 0.1, 0.316: None}, lattice) is None  # the next point diverged
    assert extension({1e-3: 0.3, 1e-2: 0.1, 0.1: 0.2}, lattice) is None  # interior
    assert extension({3.16: 0.2, 10.0: 0.1}, lattice) is None  # bounded at 10
    assert extension({1e-6: 0.1, 3.16e-6: 0.2}, lattice) is None  # and at 1e-6


def test_resampled_lrs_reselect_on_each_resample_of_seeds() -> None:
    import numpy as np

    from nfl.selection import resampled_lrs

    # seed 0 prefers 1e-2, seed 1 prefers 1e-1 (and diverges at 1e-3)
    records = [record(1e-2, 0, 0.1), record(1e-1, 0, 0.5), record(1e-3, 0, 0.6),
               record(1e-2, 1, 0.5), record(1e-1, 1, 0.1), record(1e-3, 1, None, None, diverged=4)]
    lrs = resampled_lrs(records, np.array([[0, 0], [1, 1]]), [0, 1])
    y = np.log10([0.6, 0.1, 0.5])  # seed 0 alone: the parabola's vertex, offset from 1e-2 in decades
    assert lrs[0] == pytest.approx(10 ** (-2 - (y[2] - y[0]) / 2 / (y[0] - 2 * y[1] + y[2])))
    assert lrs[1] == 1e-1  # seed 1 alone: 1e-3 diverged, 1e-1 is the edge


def test_interpolated_lrs_at_once_equal_a_least_squares_parabola_per_column() -> None:
    """The closed-form vertex of every column against np.polyfit's, one column at a time (the oracle):
    random score curves, some with diverged points, some flat, some with the best point at an edge."""
    import numpy as np

    from nfl.selection import interpolated_lrs

    def oracle(lrs: list[float], column: np.ndarray) -> float:
        if np.isnan(column).all():
            return np.nan
        i = int(np.where(np.isnan(column), np.inf, column).argmin())
        if i in (0, len(lrs) - 1) or np.isnan(column[i - 1 : i + 2]).any():
            return lrs[i]
        x, y = np.log10(lrs[i - 1 : i + 2]), np.log10(column[i - 1 : i + 2])
        curvature, slope, _ = np.polyfit(x, y, 2)
        return lrs[i] if curvature <= 0 else 10 ** np.clip(-slope / (2 * curvature), x[0], x[2])

    rng = np.random.default_rng(0)
    lrs = [10 ** (-4 + 0.5 * k) for k in range(7)]
    scores = 10 ** rng.normal(-2, 0.5, size=(7, 400))
    scores[rng.random(scores.shape) < 0.1] = np.nan
    scores[:, :5] = 0.3  # flat: the smallest lr
    scores[:, 5] = np.nan  # every point diverged
    got = interpolated_lrs(lrs, scores)
    expected = np.array([oracle(lrs, scores[:, b]) for b in range(scores.shape[1])])
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert np.isnan(got[5]) and (got[:5] == lrs[0]).all()
    assert not np.isin(got[~np.isnan(got)], lrs).all()  # some optima between grid points
