"""Selection on validation, report on test: hand-made records, ties, a diverged grid point."""

from __future__ import annotations

from nfl.selection import at_tuned_lr, select_lr, selected_step, tune


def record(lr: float, seed: int, val: float | None, test: float | None = 0.5,
           diverged: int | None = None) -> dict:
    return {"method": "lora", "rank": 2, "seed": seed, "lr": lr,
            "summary": {"min_val_loss": val, "test_loss": test, "diverged_at": diverged}}


def test_the_lowest_mean_validation_loss_over_seeds_wins() -> None:
    records = [record(1e-3, 0, 0.30), record(1e-3, 1, 0.10), record(1e-2, 0, 0.15), record(1e-2, 1, 0.16)]
    assert select_lr(records) == 1e-2  # mean 0.155 beats 0.20, though 1e-3 has the single best seed


def test_a_diverged_grid_point_is_never_selected() -> None:
    records = [record(1e-1, 0, 0.01), record(1e-1, 1, None, None, diverged=7), record(1e-3, 0, 0.4), record(1e-3, 1, 0.4)]
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
