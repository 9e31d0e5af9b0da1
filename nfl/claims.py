"""The papers' claims as data, and the rule that turns a measured effect into a verdict.

An effect is oriented so that the claim predicts it positive: ``log10(treatment / control)`` of a
metric for a claim that the treatment is *greater*, and the negative of that for *less*. Given its
interval [low, high] and a margin m > 0 (the smallest effect that matters: a 10% ratio for losses),

* *supported*: low > m, the effect is there and large enough to matter;
* *contradicted*: high < -m, the opposite effect is there;
* *not supported*: -m < low and high < m, any effect is too small to matter;
* *inconclusive*: otherwise (the interval straddles a margin), or fewer than ``MIN_SEEDS`` runs a side.

An equivalence claim ("within a few percent") is supported when its interval lies inside (-m, m)
and contradicted when the interval lies wholly beyond m. A claim of several parts is supported when
every part is, contradicted when any part is, else not supported when any part is, else inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np

Direction = Literal["greater", "less", "within"]
VERDICTS = ("supported", "not supported", "contradicted", "inconclusive")
MIN_SEEDS = 3  # a t-interval from two runs has one degree of freedom: too wide to decide anything
CONFIDENCE = 0.95
RULE = (
    "effect oriented so the claim predicts it > 0; with its 95% interval [lo, hi] and margin m: supported if "
    "lo > m, contradicted if hi < -m, not supported if -m < lo and hi < m, else inconclusive (also with fewer "
    f"than {MIN_SEEDS} seeds a side); 'within' claims: supported if -m < lo and hi < m, contradicted if the "
    "interval lies beyond m; a claim is the weakest of its parts (contradicted > not supported > inconclusive)"
)


@dataclass(frozen=True)
class Effect:
    """An estimate with its interval, the smallest sample behind it and how the interval was made."""

    estimate: float
    low: float
    high: float
    n: int
    interval: str

    def flipped(self) -> Effect:
        return Effect(-self.estimate, -self.high, -self.low, self.n, self.interval)


def welch_difference(treatment: Sequence[float], control: Sequence[float], confidence: float = CONFIDENCE) -> Effect:
    """mean(treatment) - mean(control) with Welch's t-interval (unequal variances)."""
    from scipy import stats

    a, b = np.asarray(treatment, float), np.asarray(control, float)
    n = min(a.size, b.size)
    estimate = float(a.mean() - b.mean()) if n else math.nan
    if n < 2:
        return Effect(estimate, -math.inf, math.inf, n, "Welch t")
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # no spread at all (deterministic runs): the interval is the point
        return Effect(estimate, estimate, estimate, n, "Welch t")
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    return Effect(estimate, float(ci.low), float(ci.high), n, "Welch t")


def bootstrap_effect(statistic: Callable[..., float], samples: Sequence[Sequence[float]], paired: bool = False,
                     confidence: float = CONFIDENCE, seed: int = 0) -> Effect:
    """``statistic(*samples)`` with a percentile bootstrap interval (BCa fails on 3-seed samples)."""
    from scipy import stats

    arrays = [np.asarray(s, float) for s in samples]
    n = min(a.size for a in arrays)
    estimate = float(statistic(*arrays))
    if n < 2:
        return Effect(estimate, -math.inf, math.inf, n, "bootstrap")
    result = stats.bootstrap(arrays, statistic, paired=paired, vectorized=False, n_resamples=2000,
                             confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return Effect(estimate, float(low), float(high), n, "bootstrap")


def timing_ratio(treatment: tuple[float, float], control: tuple[float, float]) -> Effect:
    """log10 of a ratio of timing costs, each given as (fastest round, median round): the estimate
    from the fastest rounds, the interval from each side's range between the two (the lowest
    ratio the ranges allow to the highest). A timing is one sweep of rounds, not a sample of
    seeds, so this is no confidence interval: it says how far load could have moved the ratio."""
    (fast_t, median_t), (fast_c, median_c) = treatment, control
    low, high = math.log10(fast_t / median_c), math.log10(median_t / fast_c)
    return Effect(math.log10(fast_t / fast_c), low, high, MIN_SEEDS, "fastest to median")


def verdict(effect: Effect | None, direction: Direction, margin: float) -> str:
    """The rule of the module docstring; ``None`` (no records to measure) is inconclusive."""
    if effect is None or effect.n < MIN_SEEDS or not math.isfinite(effect.estimate):
        return "inconclusive"
    oriented = effect.flipped() if direction == "less" else effect
    inside = -margin < oriented.low and oriented.high < margin
    if direction == "within":
        beyond = oriented.low > margin or oriented.high < -margin
        return "supported" if inside else "contradicted" if beyond else "inconclusive"
    if oriented.low > margin:
        return "supported"
    if oriented.high < -margin:
        return "contradicted"
    return "not supported" if inside else "inconclusive"


def combine(verdicts: Sequence[str]) -> str:
    """A claim of several parts: supported only if all are; otherwise its weakest part."""
    if verdicts and all(v == "supported" for v in verdicts):
        return "supported"
    for worst in ("contradicted", "not supported"):
        if worst in verdicts:
            return worst
    return "inconclusive"


# --- the claims -------------------------------------------------------------------------------

LOSS_MARGIN = math.log10(1.1)  # a 10% ratio of losses or times is the smallest difference that matters
IMPROVED = ("pissa", "milora", "dora", "miss")  # "MiSS, PiSSA and the other improved variants" of claim 7


@dataclass(frozen=True)
class Part:
    """One comparison: ``metric`` of the ``treatment`` methods against the ``control`` ones.

    Metrics: quality ones per seed (test_loss, forgetting, initial_grad_norm, early_loss: the test loss
    a tenth of the way through), timing costs (init_time, step_time), and two across methods
    (spread: log10 of the worst over the best adapter's mean test loss; lr_sharpness: Spearman's rho
    of tuned LR against 1 / lambda_max).
    """

    metric: str
    treatment: tuple[str, ...]
    control: tuple[str, ...]
    direction: Direction
    margin: float = LOSS_MARGIN


@dataclass(frozen=True)
class Claim:
    number: int
    text: str
    source: str
    measurement: str
    needs: tuple[str, ...]  # the studies whose records the measurement reads
    parts: tuple[Part, ...]


CLAIMS: tuple[Claim, ...] = (
    Claim(1, "SVD-based PiSSA attains a relatively low loss", "MiSS §3, Fig. 2",
          "test loss, PiSSA / LoRA", ("quality",), (Part("test_loss", ("pissa",), ("lora",), "less"),)),
    Claim(2, "efficiency-focused MoS has a higher loss", "MiSS §3",
          "test loss, MoS / LoRA", ("quality",), (Part("test_loss", ("mos",), ("lora",), "greater"),)),
    Claim(3, "MiSS performs well among the variants", "MiSS §3",
          "test loss, MiSS / geometric mean of the other adapters", ("quality",),
          (Part("test_loss", ("miss",), ("lora", "pissa", "milora", "vera", "dora", "prolora", "adalora", "mos"),
                "less"),)),
    Claim(4, "PiSSA's SVD makes its initialisation slow", "MiSS §3",
          "init time, PiSSA / LoRA (fastest rounds)", ("init_time",),
          (Part("init_time", ("pissa",), ("lora",), "greater"),)),
    Claim(5, "MiSS^e is fast to initialise and train, faster than LoRA", "MiSS §3, Fig. 2",
          "init and step time, MiSS^e / LoRA (fastest rounds)", ("init_time", "train_time"),
          (Part("init_time", ("miss_e",), ("lora",), "less"), Part("step_time", ("miss_e",), ("lora",), "less"))),
    Claim(6, "VeRA and AdaLoRA are efficient but adapt less", "MiSS §3",
          "step time and test loss, each / LoRA", ("train_time", "quality"),
          (Part("step_time", ("vera",), ("lora",), "less"), Part("step_time", ("adalora",), ("lora",), "less"),
           Part("test_loss", ("vera",), ("lora",), "greater"), Part("test_loss", ("adalora",), ("lora",), "greater"))),
    Claim(7, "improved variants start with a larger gradient norm and converge faster early", "MiSS Fig. 1",
          "initial task-gradient norm and test loss at 10% of the steps, PiSSA/MiLoRA/DoRA/MiSS vs LoRA",
          ("quality",),
          (Part("initial_grad_norm", IMPROVED, ("lora",), "greater"), Part("early_loss", IMPROVED, ("lora",), "less"))),
    Claim(8, "MiLoRA forgets less than PiSSA and LoRA", "MiLoRA §4",
          "base-task test loss after adaptation, MiLoRA / PiSSA and / LoRA", ("quality",),
          (Part("forgetting", ("milora",), ("pissa",), "less"), Part("forgetting", ("milora",), ("lora",), "less"))),
    Claim(9, "once each LR is tuned, methods are within a few percent", "Learning Rate Matters §4",
          "worst / best adapter mean test loss (bootstrap over seeds), margin 5%", ("quality",),
          (Part("spread", (), (), "within", math.log10(1.05)),)),
    Claim(10, "a method's best LR tracks 1 / lambda_max at initialisation", "Learning Rate Matters §5",
          "Spearman rho of tuned LR vs 1 / lambda_max across methods (bootstrap), margin 0.3", ("quality", "sharpness"),
          (Part("lr_sharpness", (), (), "greater", 0.3),)),
)
