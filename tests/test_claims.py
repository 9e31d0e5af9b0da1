"""The verdict rule on hand-made effects: clear, null, wrong-signed, too few seeds; paired effects;
the equivalence test on identical methods; and the table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nfl.claims import (
    CLAIMS,
    MIN_SEEDS,
    Effect,
    combine,
    decide,
    paired_difference,
    pairwise_spread,
    timing_ratio,
    verdict,
)

M = math.log10(1.1)


def seeds(mean: float, n: int = 5, spread: float = 0.01, jitter: int = 0) -> dict[int, float]:
    """log10 metrics over n seeds, evenly spread; ``jitter`` picks a small per-seed perturbation so two
    sides are not exact shifts of each other (their differences would have no spread)."""
    noise = np.random.default_rng(jitter).normal(0, spread / 4, n) if jitter else 0.0
    return dict(enumerate(mean + spread * np.linspace(-1, 1, n) + noise))


def test_a_paired_difference_is_the_paired_t_on_the_seeds_both_sides_have() -> None:
    from scipy import stats

    a, b = {1: 1.0, 2: 1.2, 3: 0.9, 4: 1.1, 9: 5.0}, {1: 0.5, 2: 0.7, 3: 0.6, 4: 0.65}
    effect = paired_difference(a, b)
    ci = stats.ttest_rel([1.0, 1.2, 0.9, 1.1], [0.5, 0.7, 0.6, 0.65]).confidence_interval()
    assert (effect.low, effect.high) == pytest.approx((ci.low, ci.high)) and effect.n == 4
    assert effect.check is None  # a sign-flip interval needs 6 seeds


def test_pairing_removes_what_the_seed_shares() -> None:
    rng = np.random.default_rng(1)
    shared = rng.normal(0, 0.5, 10)  # the seed's task and model move both methods alike
    a = dict(enumerate(shared - 0.2 + rng.normal(0, 0.02, 10)))
    b = dict(enumerate(shared + rng.normal(0, 0.02, 10)))
    effect = paired_difference(a, b)
    assert effect.high - effect.low < 0.1 and verdict(effect, "less", M) == "supported"
    assert effect.check is not None and effect.check[0] < effect.estimate < effect.check[1]
    assert decide(effect, "less", M) == ("supported", "paired t; sign-flip agrees")


def test_a_clear_effect_is_supported_and_its_mirror_contradicted() -> None:
    lower = paired_difference(seeds(-1.0), seeds(-0.5, jitter=1))  # log10 losses: treatment a third of control
    assert verdict(lower, "less", M) == "supported"
    assert verdict(lower, "greater", M) == "contradicted"


def test_a_null_effect_is_not_supported() -> None:
    null = paired_difference(seeds(-1.0), seeds(-1.0, spread=0.012))
    assert verdict(null, "less", M) == "not supported"
    assert verdict(null, "greater", M) == "not supported"
    assert verdict(null, "within", M) == "supported"


def test_an_effect_smaller_than_the_margin_but_significant_is_not_supported() -> None:
    tiny = paired_difference(seeds(-1.0, 20, 0.001), dict(enumerate(-1.01 + 0.001 * np.cos(np.arange(20)))))
    assert tiny.low > 0 and verdict(tiny, "greater", M) == "not supported"


def test_an_interval_straddling_the_margin_is_inconclusive() -> None:
    noisy = paired_difference(seeds(-1.0, spread=0.3), dict(enumerate([-1.0, -1.4, -0.9, -1.3, -0.8])))
    assert verdict(noisy, "greater", M) == "inconclusive"
    assert verdict(noisy, "within", M) == "inconclusive"


def test_too_few_seeds_is_inconclusive_however_large_the_effect() -> None:
    few = paired_difference(seeds(-3.0, MIN_SEEDS - 1), seeds(0.0, MIN_SEEDS - 1))
    assert verdict(few, "less", M) == "inconclusive"
    assert verdict(None, "less", M) == "inconclusive"


def test_when_the_sign_flip_check_disagrees_the_verdict_uses_the_hull() -> None:
    effect = Effect(0.2, 0.05, 0.35, 8, "paired t", check=(-0.01, 0.3))  # t clears the margin, sign-flip does not
    outcome, how = decide(effect, "greater", M)
    assert outcome == "inconclusive" and how.startswith("hull") and "supported" in how
    assert decide(effect.flipped(), "less", M)[0] == "inconclusive"


def test_a_spread_beyond_the_margin_contradicts_a_within_claim() -> None:
    sides = {"a": seeds(-0.5, jitter=1), "b": seeds(-1.0, jitter=2), "c": seeds(-1.01, jitter=3)}
    effect, pair = pairwise_spread(sides)
    assert verdict(effect, "within", M) == "contradicted" and pair == ("a", "c")


def test_identical_methods_are_never_contradicted_as_within_a_few_percent() -> None:
    """Ten identical methods, seeds shared, 300 simulated studies: the old worst/best bootstrap
    said 'contradicted' in 89-100% of such runs; this test must never."""
    rng = np.random.default_rng(7)
    margin, outcomes = math.log10(1.05), []
    for _ in range(300):
        shared = rng.normal(-2.0, 0.3, 10)
        methods = {f"m{i}": dict(enumerate(shared + rng.normal(0, 0.005, 10))) for i in range(10)}
        outcomes.append(verdict(pairwise_spread(methods)[0], "within", margin))
    assert "contradicted" not in outcomes
    assert outcomes.count("supported") > 250  # and it can say so when the copies are this close


def test_a_spread_interval_covers_the_largest_true_pairwise_ratio() -> None:
    rng = np.random.default_rng(11)
    true = {"a": 0.0, "b": 0.1, "c": 0.25}  # log10: the worst is c/a, 0.25
    covered = []
    for _ in range(200):
        shared = rng.normal(0, 0.5, 10)
        sides = {m: dict(enumerate(shared + mu + rng.normal(0, 0.1, 10))) for m, mu in true.items()}
        effect, _ = pairwise_spread(sides)
        covered.append(effect.low <= 0.25 <= effect.high)
    assert np.mean(covered) >= 0.95


def test_timing_ratio_estimates_from_the_fastest_rounds_and_spans_their_confirming_rounds() -> None:
    slow = timing_ratio((2e-3, 2.1e-3), (1e-3, 1.05e-3))
    assert slow.estimate == pytest.approx(math.log10(2)) and verdict(slow, "greater", M) == "supported"
    assert (slow.low, slow.high) == (pytest.approx(math.log10(2e-3 / 1.05e-3)), pytest.approx(math.log10(2.1)))
    overlapping = timing_ratio((1.05e-3, 1.4e-3), (1e-3, 1.3e-3))  # neither cost confirmed within 5%
    assert verdict(overlapping, "greater", M) == "inconclusive"


def test_combine_takes_the_weakest_part() -> None:
    assert combine(["supported", "supported"]) == "supported"
    assert combine(["supported", "inconclusive"]) == "inconclusive"
    assert combine(["supported", "not supported", "inconclusive"]) == "not supported"
    assert combine(["not supported", "contradicted"]) == "contradicted"


def test_the_table_has_every_claim_numbered_and_measurable() -> None:
    import adapters

    assert [c.number for c in CLAIMS] == list(range(1, 15))
    for claim in CLAIMS:
        assert claim.text and claim.measurement and claim.needs and claim.parts
        for part in claim.parts:
            for method in part.treatment + part.control:
                adapters.get(method)
            assert part.direction in ("greater", "less", "within") and part.margin > 0


def test_a_control_whose_fastest_round_was_never_reproduced_leaves_the_ratio_open() -> None:
    lucky = timing_ratio((2e-3, 2.1e-3), (1e-3, 5e-3))  # the control's next-fastest rounds ran 5x its fastest
    assert lucky.low < 0 and verdict(lucky, "greater", M) == "inconclusive"
    assert verdict(timing_ratio((5e-3, 5.5e-3), (1e-3, 2e-3)), "greater", M) == "supported"


def test_the_confirming_round_is_the_slowest_of_those_that_reproduced_the_fastest() -> None:
    """A loaded sweep: the median round is far slower, the cost and its confirming round are not."""
    from nfl.measure.rounds import StopRule, summarise

    seconds = [1.00, 1.03, 1.04, 3.0, 3.1, 2.9, 3.3]
    blocks = [{"clock": "thread", "seconds": s, "wall_s": s, "calls": 1} for s in seconds]
    timing = summarise(blocks, StopRule(max_rounds=7, confirmations=2))
    assert timing["fastest_s"] == 1.00 and timing["confirming_s"] == 1.04 and timing["median_s"] == 2.9


def test_clearance_is_the_distance_from_the_nearest_margin_in_half_widths() -> None:
    from nfl.claims import FIRM, clearance

    m = 0.04
    far = Effect(0.3, 0.2, 0.4, 10, "paired t")  # nearest end 0.2, 0.16 from m; half-width 0.1
    assert clearance(far, "greater", m) == pytest.approx(1.6) and clearance(far, "greater", m) >= FIRM
    assert clearance(far.flipped(), "less", m) == pytest.approx(1.6)  # oriented as the claim predicts
    near = Effect(0.1, 0.03, 0.17, 10, "paired t")  # the low end 0.01 inside the margin
    assert clearance(near, "greater", m) == pytest.approx(0.01 / 0.07)
    straddling = Effect(0.0, -0.5, 0.5, 10, "paired t")  # inconclusive, but its ends far from both margins
    assert clearance(straddling, "greater", m) == pytest.approx(0.46 / 0.5)
    checked = Effect(0.3, 0.2, 0.4, 10, "paired t", check=(0.05, 0.4))  # the hull's low end 0.01 from m
    assert clearance(checked, "greater", m) == pytest.approx(0.01 / 0.175)
    assert clearance(Effect(0.3, -math.inf, math.inf, 10, "paired t"), "greater", m) == 0.0
    assert clearance(Effect(0.3, 0.2, 0.4, 2, "paired t"), "greater", m) == 0.0  # fewer than MIN_SEEDS
    assert clearance(Effect(0.3, 0.3, 0.3, 10, "paired t"), "greater", m) == math.inf  # deterministic, away
    assert clearance(None, "greater", m) == 0.0


def test_a_claim_is_firm_when_all_its_parts_are_or_one_firm_part_contradicts_it() -> None:
    from nfl.claims import firm

    assert firm(["supported", "supported"], [1.5, 2.0]) and not firm(["supported", "supported"], [1.5, 0.4])
    assert firm(["contradicted", "inconclusive"], [1.2, 0.1])  # the firm contradicted part decides alone
    assert not firm(["contradicted", "inconclusive"], [0.3, 5.0])  # the inconclusive part cannot keep it contradicted
    assert not firm(["not supported", "inconclusive"], [3.0, 0.2])  # the inconclusive part could still turn C
