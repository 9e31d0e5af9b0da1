"""Statistics over seeds: the paired t-interval, the sign-flip interval that checks it, geometric means."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nfl.stats import geometric_ci, paired_t, sign_flip_computable, sign_flip_interval, sign_flip_p


def test_paired_t_is_scipys_one_sample_interval_of_the_differences() -> None:
    from scipy import stats

    d = [0.12, 0.05, 0.2, 0.08, 0.15]
    estimate, low, high = paired_t(d)
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert estimate == pytest.approx(np.mean(d)) and (low, high) == pytest.approx((ci.low, ci.high))


def test_paired_t_without_spread_or_with_one_seed() -> None:
    assert paired_t([0.3, 0.3, 0.3]) == (0.3, 0.3, 0.3)
    assert paired_t([0.3])[1:] == (-math.inf, math.inf)


def test_a_sign_flip_test_cannot_reject_below_six_pairs_and_its_interval_is_then_unbounded() -> None:
    assert not sign_flip_computable(5) and sign_flip_computable(6)
    assert sign_flip_interval([1.0, 1.1, 1.2, 1.3, 1.4]) == (-math.inf, math.inf)
    assert sign_flip_p([1.0, 1.1, 1.2, 1.3, 1.4, 1.5]) == pytest.approx(2 / 64)  # all alike: the smallest p


def test_the_sign_flip_interval_is_the_set_of_shifts_it_does_not_reject() -> None:
    d = np.random.default_rng(3).normal(0.1, 0.2, 10)
    low, high = sign_flip_interval(d)
    assert low < d.mean() < high
    inside, outside = 1e-6 * (high - low), 1e-3 * (high - low)
    assert sign_flip_p(d, low + inside) > 0.05 and sign_flip_p(d, high - inside) > 0.05
    assert sign_flip_p(d, low - outside) <= 0.05 and sign_flip_p(d, high + outside) <= 0.05
    t_low, t_high = paired_t(d)[1:]
    assert abs(low - t_low) < 0.5 * (t_high - t_low) and abs(high - t_high) < 0.5 * (t_high - t_low)


def test_the_sign_flip_interval_covers_the_true_shift_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    covered = [low < 0.3 < high for low, high in (sign_flip_interval(rng.laplace(0.3, 1.0, 8)) for _ in range(300))]
    assert 0.9 <= np.mean(covered) <= 0.99


def test_a_geometric_mean_and_its_times_divide_interval() -> None:
    g = geometric_ci([0.01, 0.04])
    assert g.mean == pytest.approx(0.02) and g.low == pytest.approx(g.mean / g.factor) and g.high > 0.04
    assert g.low > 0  # never below zero, unlike mean - half on a wide arithmetic interval
    assert geometric_ci([0.5]).factor == 1.0


def test_kendall_tau_of_one_ranking_against_itself_is_1_and_against_its_reverse_minus_1() -> None:
    from nfl.stats import kendall_tau_interval

    rng = np.random.default_rng(0)
    means = np.arange(6)[:, None] * 1.0  # six methods, well separated against a seed noise of 0.05
    same = kendall_tau_interval(means + rng.normal(0, 0.05, (6, 10)), means + rng.normal(0, 0.05, (6, 8)),
                                resamples=300)
    assert same == pytest.approx((1.0, 1.0, 1.0))
    reverse = kendall_tau_interval(means + rng.normal(0, 0.05, (6, 10)), -means + rng.normal(0, 0.05, (6, 8)),
                                   resamples=300)
    assert reverse == pytest.approx((-1.0, -1.0, -1.0))
    noisy = kendall_tau_interval(rng.normal(0, 1, (6, 5)), rng.normal(0, 1, (6, 5)), resamples=300)
    assert noisy[1] < noisy[0] < noisy[2] and noisy[1] < 0 < noisy[2]  # unrelated rankings: an interval about 0
