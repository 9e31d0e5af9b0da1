"""Figures' intervals are the 95% intervals, uncut: geometric means with ×/÷ bars for positive values."""

from __future__ import annotations

import numpy as np
import pytest

from figures.records import aggregate, clipped_note, error_bars


def records(values: list[float], method: str = "lora") -> list[dict]:
    return [{"method": method, "rank": 2, "seed": i, "summary": {"trainable_params": 256, "test_loss": v,
                                                                "diverged_at": None}} for i, v in enumerate(values)]


def test_positive_values_give_a_geometric_mean_with_a_times_divide_interval() -> None:
    from scipy import stats

    values = [0.001, 0.01, 0.1]  # the spread of the README's noisiest rows: half-width wider than the mean
    (point,) = aggregate(records(values), lambda r: r["summary"]["test_loss"])
    factor = 10 ** (stats.sem(np.log10(values)) * stats.t.ppf(0.975, 2))
    assert point.geometric and point.mean == pytest.approx(0.01)
    assert (point.low, point.high) == pytest.approx((0.01 / factor, 0.01 * factor))
    lower, upper = error_bars([point])[:, 0]
    assert lower == pytest.approx(point.mean - point.low) and upper == pytest.approx(point.high - point.mean)
    assert 0 < point.low and clipped_note([point]) is None  # drawn whole on a log axis, not cut at mean / 10


def test_values_with_a_zero_keep_the_arithmetic_interval_and_a_note_says_where_it_is_cut() -> None:
    (point,) = aggregate(records([0.0, 0.5, 1.0]), lambda r: r["summary"]["test_loss"])
    assert not point.geometric and point.mean == pytest.approx(0.5) and point.low < 0
    assert error_bars([point])[0, 0] == pytest.approx(point.mean - point.low)
    assert "lora r=2" in clipped_note([point])


def test_one_seed_has_no_interval() -> None:
    (point,) = aggregate(records([0.02]), lambda r: r["summary"]["test_loss"])
    assert point.low == point.high == pytest.approx(0.02) and np.all(error_bars([point]) == 0)
