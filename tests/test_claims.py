"""The verdict rule on hand-made effects: clear, null, wrong-signed, too few seeds, and the table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nfl.claims import CLAIMS, MIN_SEEDS, bootstrap_effect, combine, timing_ratio, verdict, welch_difference

M = math.log10(1.1)


def seeds(mean: float, n: int = 5, spread: float = 0.01) -> list[float]:
    return list(mean + spread * np.linspace(-1, 1, n))


def test_welch_difference_matches_scipy_and_covers_the_difference() -> None:
    from scipy import stats

    a, b = [1.0, 1.2, 0.9, 1.1], [0.5, 0.7, 0.6]
    effect = welch_difference(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval()
    assert (effect.low, effect.high) == pytest.approx((ci.low, ci.high))
    assert effect.low < np.mean(a) - np.mean(b) < effect.high and effect.n == 3


def test_a_clear_effect_is_supported_and_its_mirror_contradicted() -> None:
    lower = welch_difference(seeds(-1.0), seeds(-0.5))  # log10 losses: treatment a third of control
    assert verdict(lower, "less", M) == "supported"
    assert verdict(lower, "greater", M) == "contradicted"


def test_a_null_effect_is_not_supported() -> None:
    null = welch_difference(seeds(-1.0), seeds(-1.0, spread=0.012))
    assert verdict(null, "less", M) == "not supported"
    assert verdict(null, "greater", M) == "not supported"
    assert verdict(null, "within", M) == "supported"


def test_an_effect_smaller_than_the_margin_but_significant_is_not_supported() -> None:
    tiny = welch_difference(seeds(-1.0, 20, 0.001), seeds(-1.01, 20, 0.001))
    assert tiny.low > 0 and verdict(tiny, "greater", M) == "not supported"


def test_an_interval_straddling_the_margin_is_inconclusive() -> None:
    noisy = welch_difference(seeds(-1.0, spread=0.3), seeds(-1.1, spread=0.3))
    assert verdict(noisy, "greater", M) == "inconclusive"
    assert verdict(noisy, "within", M) == "inconclusive"


def test_too_few_seeds_is_inconclusive_however_large_the_effect() -> None:
    few = welch_difference(seeds(-3.0, MIN_SEEDS - 1), seeds(0.0, MIN_SEEDS - 1))
    assert verdict(few, "less", M) == "inconclusive"
    assert verdict(None, "less", M) == "inconclusive"


def test_a_spread_beyond_the_margin_contradicts_a_within_claim() -> None:
    assert verdict(welch_difference(seeds(-0.5), seeds(-1.0)), "within", M) == "contradicted"


def test_bootstrap_effect_of_a_mean_difference_agrees_in_sign_and_brackets_it() -> None:
    a, b = seeds(2.0, 8, 0.2), seeds(1.0, 8, 0.2)
    effect = bootstrap_effect(lambda x, y: x.mean() - y.mean(), [a, b])
    assert effect.low < 1.0 < effect.high and effect.low > 0.5 and verdict(effect, "greater", 0.1) == "supported"


def test_timing_ratio_estimates_from_the_fastest_rounds_and_spans_fastest_to_median() -> None:
    slow = timing_ratio((2e-3, 2.1e-3), (1e-3, 1.1e-3))
    assert slow.estimate == pytest.approx(math.log10(2)) and verdict(slow, "greater", M) == "supported"
    assert (slow.low, slow.high) == (pytest.approx(math.log10(2e-3 / 1.1e-3)), pytest.approx(math.log10(2.1)))
    overlapping = timing_ratio((1.05e-3, 1.4e-3), (1e-3, 1.3e-3))
    assert verdict(overlapping, "greater", M) == "inconclusive"


def test_combine_takes_the_weakest_part() -> None:
    assert combine(["supported", "supported"]) == "supported"
    assert combine(["supported", "inconclusive"]) == "inconclusive"
    assert combine(["supported", "not supported", "inconclusive"]) == "not supported"
    assert combine(["not supported", "contradicted"]) == "contradicted"


def test_the_table_has_the_ten_claims_each_measurable() -> None:
    import adapters

    assert [c.number for c in CLAIMS] == list(range(1, 11))
    for claim in CLAIMS:
        assert claim.text and claim.measurement and claim.needs and claim.parts
        for part in claim.parts:
            for method in part.treatment + part.control:
                adapters.get(method)
            assert part.direction in ("greater", "less", "within") and part.margin > 0


def test_a_control_whose_median_round_ran_far_slower_leaves_the_ratio_open() -> None:
    loaded = timing_ratio((2e-3, 2.1e-3), (1e-3, 5e-3))  # the control met heavy load: its median 5x its fastest
    assert loaded.low < 0 and verdict(loaded, "greater", M) == "inconclusive"
    assert verdict(timing_ratio((5e-3, 5.5e-3), (1e-3, 2e-3)), "greater", M) == "supported"
