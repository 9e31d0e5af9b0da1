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

Quality effects are paired: at one seed every method adapts the same pretrained model on the same
data, so an effect is the mean over seeds of the per-seed difference of log10 metrics, with a paired
t-interval. Where a sign-flip (permutation) interval can be computed (n >= 6 seeds at 95%) it is the
check: if the two intervals give different verdicts, the verdict comes from their hull (the wider
reading), and the table says so. The spread of several methods (claim 9) is the largest pairwise
log ratio, with Bonferroni-simultaneous paired t-intervals on every pair: for methods that are truly
identical every pair's interval covers 0 with probability >= 95% jointly, so the claim comes out
supported or inconclusive, and contradicted at most 5% of the time (only when some interval also
clears the margin).

A verdict is *firm* when every part's interval lies at least its own half-width away from each
margin (:func:`clearance` >= ``FIRM``): the interval would have to move by half its width for the
verdict to change; a contradicted claim is firm when one contradicted part is (:func:`firm`).
Verdicts on disjoint seed sets disagree only where an interval ends near a margin; firm verdicts
agreed with a disjoint run's 98.5% of the time (10-seed runs, docs/design.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from nfl.stats import CONFIDENCE, paired_t, sign_flip_computable, sign_flip_interval

Direction = Literal["greater", "less", "within"]
VERDICTS = ("supported", "not supported", "contradicted", "inconclusive")
MIN_SEEDS = 3  # a t-interval from two runs has one degree of freedom: too wide to decide anything
# Chosen on six disjoint 10-seed runs (width 64, out_of_span; 15 pairs, each run's verdicts against the other's):
# those whose every interval end lay >= 1 half-width from each margin agreed 98.5% of the time (>= 0.5: 96.5%),
# the rest 71%; with a contradicted claim firm by one firm contradicted part, 64% of cells were firm. Checked on
# four 20-seed runs: 98.8% of firm verdicts agreed (70% of cells firm), the rest 73%.
FIRM = 1.0
RULE = (
    "effect oriented so the claim predicts it > 0; with its 95% interval [lo, hi] and margin m: supported if "
    "lo > m, contradicted if hi < -m, not supported if -m < lo and hi < m, else inconclusive (also with fewer "
    f"than {MIN_SEEDS} seeds a side); 'within' claims: supported if -m < lo and hi < m, contradicted if the "
    "interval lies beyond m; a claim is the weakest of its parts (contradicted > not supported > inconclusive). "
    "Quality effects are paired over seeds (mean per-seed log10 ratio, paired t-interval, at tuned lrs widened to "
    "a seed bootstrap that re-selects every lr; a sign-flip interval checks it from 6 seeds, and where the two "
    "disagree the verdict uses their hull); the spread across "
    "methods is the largest pairwise log ratio with Bonferroni-simultaneous paired t-intervals"
)


@dataclass(frozen=True)
class Effect:
    """An estimate with its interval, the smallest sample behind it and how the interval was made;
    ``check``, where there is one, a second interval (a sign-flip one) that must agree."""

    estimate: float
    low: float
    high: float
    n: int
    interval: str
    check: tuple[float, float] | None = None

    def flipped(self) -> Effect:
        check = None if self.check is None else (-self.check[1], -self.check[0])
        return Effect(-self.estimate, -self.high, -self.low, self.n, self.interval, check)

    def minus(self, offset: float) -> Effect:
        """The effect measured from ``offset`` (a claimed log ratio) instead of from 0."""
        check = None if self.check is None else (self.check[0] - offset, self.check[1] - offset)
        return Effect(self.estimate - offset, self.low - offset, self.high - offset, self.n, self.interval, check)

    def hull(self) -> tuple[float, float]:
        """The interval widened to its check's, where there is one."""
        if self.check is None:
            return self.low, self.high
        return min(self.low, self.check[0]), max(self.high, self.check[1])


def paired_difference(treatment: dict[int, float], control: dict[int, float], confidence: float = CONFIDENCE) -> Effect:
    """Mean over the seeds both sides have of treatment - control (per seed), with the paired
    t-interval and, from 6 seeds, the sign-flip interval as its check."""
    common = sorted(set(treatment) & set(control))
    d = np.array([treatment[s] - control[s] for s in common], dtype=float)
    estimate, low, high = paired_t(d, confidence)
    check = sign_flip_interval(d, confidence) if sign_flip_computable(d.size, confidence) and np.ptp(d) > 0 else None
    return Effect(estimate, low, high, d.size, "paired t", check)


def pairwise_spread(
    per_method: dict[str, dict[int, float]], confidence: float = CONFIDENCE
) -> tuple[Effect, tuple[str, str]]:
    """The largest pairwise difference of mean log metrics (worst over best), on the seeds every
    method has, with its simultaneous interval: every ordered pair's paired t-interval at confidence
    1 - alpha / pairs (Bonferroni), so that [max of lows, max of highs] covers the largest true
    difference whenever all pairs are covered. Returns the effect and the (worst, best) pair."""
    from scipy import stats

    common = sorted(set.intersection(*(set(v) for v in per_method.values())))
    names = list(per_method)
    if len(names) < 2:
        raise ValueError("a spread needs two methods")
    pairs = [(a, b) for a in names for b in names if a != b]
    simultaneous = 1 - (1 - confidence) / (len(pairs) // 2)
    label = f"simultaneous paired t (Bonferroni over {len(pairs) // 2} pairs)"
    d = np.array([[per_method[a][s] - per_method[b][s] for s in common] for a, b in pairs]).reshape(len(pairs), -1)
    estimates = d.mean(axis=1) if common else np.full(len(pairs), math.nan)
    worst = int(np.argmax(estimates)) if common else 0
    if len(common) < 2:
        return Effect(float(estimates[worst]), -math.inf, math.inf, len(common), label), pairs[worst]
    spread = np.ptp(d, axis=1) > 0
    low, high = estimates.copy(), estimates.copy()  # a pair without spread: its interval is the point
    if spread.any():
        ci = stats.ttest_1samp(d[spread], 0.0, axis=1).confidence_interval(simultaneous)
        low[spread], high[spread] = ci.low, ci.high
    return Effect(float(estimates[worst]), float(low.max()), float(high.max()), len(common), label), pairs[worst]


def timing_ratio(treatment: tuple[float, float], control: tuple[float, float]) -> Effect:
    """log10 of a ratio of timing costs, each given as (fastest round, confirming round: the slowest
    of the rounds that reproduced the fastest, nfl.measure.rounds): the estimate from the fastest
    rounds, the interval from each side's range between the two (the lowest ratio the ranges allow
    to the highest). A cost is its fastest round because load only ever adds time; the rounds that
    confirm it say how precisely it is known (within 5% when confirmed, wider when not). The median
    round is left out: it measures the machine's load, not the cost, and moved verdicts with it.
    A timing is one sweep of rounds, not a sample of seeds, so this is no confidence interval."""
    (fast_t, confirm_t), (fast_c, confirm_c) = treatment, control
    low, high = math.log10(fast_t / confirm_c), math.log10(confirm_t / fast_c)
    return Effect(math.log10(fast_t / fast_c), low, high, MIN_SEEDS, "fastest to confirming")


def _rule(low: float, high: float, direction: Direction, margin: float) -> str:
    """The verdict of an interval already oriented so the claim predicts it positive."""
    inside = -margin < low and high < margin
    if direction == "within":
        beyond = low > margin or high < -margin
        return "supported" if inside else "contradicted" if beyond else "inconclusive"
    if low > margin:
        return "supported"
    if high < -margin:
        return "contradicted"
    return "not supported" if inside else "inconclusive"


def _oriented(effect: Effect | None, direction: Direction) -> Effect | None:
    """The effect oriented so that the claim predicts it positive; None when there is nothing to
    decide on (no records, fewer than ``MIN_SEEDS`` seeds, no finite estimate)."""
    if effect is None or effect.n < MIN_SEEDS or not math.isfinite(effect.estimate):
        return None
    return effect.flipped() if direction == "less" else effect


def decide(effect: Effect | None, direction: Direction, margin: float) -> tuple[str, str]:
    """The rule of the module docstring and which interval it used; ``None`` (no records to
    measure) is inconclusive."""
    oriented = _oriented(effect, direction)
    if oriented is None:
        return "inconclusive", f"fewer than {MIN_SEEDS} seeds" if effect is not None else "no records"
    first = _rule(oriented.low, oriented.high, direction, margin)
    if oriented.check is None:
        why = " (sign-flip needs >= 6 seeds)" if effect.interval.startswith("paired t") else ""
        return first, effect.interval + why
    second = _rule(*oriented.check, direction, margin)
    if first == second:
        return first, f"{effect.interval}; sign-flip agrees"
    return _rule(*oriented.hull(), direction, margin), f"hull of {effect.interval} ({first}) and sign-flip ({second})"


def clearance(effect: Effect | None, direction: Direction, margin: float) -> float:
    """How far the interval's ends lie from the nearest margin (-m or m), in half-widths of the
    interval (the hull with its sign-flip check, where there is one): 0 without an effect or with an
    unbounded interval, infinite for a point away from both margins."""
    oriented = _oriented(effect, direction)
    if oriented is None:
        return 0.0
    low, high = oriented.hull()
    if not (math.isfinite(low) and math.isfinite(high)):
        return 0.0
    nearest = min(abs(end - edge) for end in (low, high) for edge in (-margin, margin))
    half = (high - low) / 2
    return nearest / half if half > 0 else math.inf if nearest > 0 else 0.0


def verdict(effect: Effect | None, direction: Direction, margin: float) -> str:
    """The verdict alone (see :func:`decide`)."""
    return decide(effect, direction, margin)[0]


def combine(verdicts: Sequence[str]) -> str:
    """A claim of several parts: supported only if all are; otherwise its weakest part."""
    if verdicts and all(v == "supported" for v in verdicts):
        return "supported"
    for worst in ("contradicted", "not supported"):
        if worst in verdicts:
            return worst
    return "inconclusive"


def firm(verdicts: Sequence[str], clearances: Sequence[float]) -> bool:
    """Whether a claim's verdict (:func:`combine` of its parts') is firm: contradicted by a part whose
    interval clears every margin by ``FIRM`` half-widths (that part alone keeps it contradicted);
    otherwise only when every part's interval does."""
    clear = [c >= FIRM for c in clearances]
    if "contradicted" in verdicts:
        return any(c for v, c in zip(verdicts, clear, strict=True) if v == "contradicted")
    return all(clear)


# --- the claims -------------------------------------------------------------------------------

LOSS_MARGIN = math.log10(1.1)  # a 10% ratio of losses or times is the smallest difference that matters
IMPROVED = ("pissa", "milora", "dora", "miss")  # "MiSS, PiSSA and the other improved variants" of claim 7
FACTOR_2 = math.log10(2)  # "about 10x": within a factor of 2 of the stated ratio


@dataclass(frozen=True)
class Part:
    """One comparison: ``metric`` of the ``treatment`` methods against the ``control`` ones.

    Metrics: quality ones per seed (test_loss, forgetting, initial_grad_norm, early_loss: the test loss
    a tenth of the way through, sharpness: lambda_max at initialisation), timing costs (init_time,
    step_time), the ratio of tuned learning rates (tuned_lr: each side's optimum interpolated between
    grid points), the change of one method's tuned lr across ranks (rank_lr, from a rank sweep) and two
    across methods (spread: log10 of the worst over the best adapter's mean test
    loss; lr_sharpness: Spearman's rho of tuned LR against 1 / lambda_max). ``target`` is the ratio a
    quantitative claim predicts ("about 10x"): the effect is then log10(ratio / target).
    """

    metric: str
    treatment: tuple[str, ...]
    control: tuple[str, ...]
    direction: Direction
    margin: float = LOSS_MARGIN
    target: float = 1.0


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
          "worst / best adapter test loss (geometric means; simultaneous paired intervals), margin 5%", ("quality",),
          (Part("spread", (), (), "within", math.log10(1.05)),)),
    Claim(10, "a method's best LR tracks 1 / lambda_max at initialisation", "Learning Rate Matters §5",
          "Spearman rho of interpolated tuned LR vs 1 / lambda_max across methods (seeds resampled, LRs re-tuned), "
          "margin 0.3", ("quality", "sharpness"),
          (Part("lr_sharpness", (), (), "greater", 0.3),)),
    Claim(11, "LoRA's best learning rate is about 10x full fine-tuning's",
          "LoRA Without Regret (Thinking Machines 2025)",
          "interpolated tuned LR, LoRA / full FT (seeds resampled, LRs re-tuned), within a factor of 2 of 10",
          ("quality",), (Part("tuned_lr", ("lora",), ("full",), "within", FACTOR_2, target=10.0),)),
    Claim(12, "PiSSA's curvature at init is about 10x LoRA's and its best LR about 10x lower; MiLoRA's 2x and 3x",
          "Learning Rate Matters §5, Table 3",
          "lambda_max PiSSA / LoRA (~10), tuned LR LoRA / PiSSA (~10), lambda_max MiLoRA / LoRA (~2), tuned LR "
          "LoRA / MiLoRA (~3), each within a factor of 2", ("quality", "sharpness"),
          (Part("sharpness", ("pissa",), ("lora",), "within", FACTOR_2, target=10.0),
           Part("tuned_lr", ("lora",), ("pissa",), "within", FACTOR_2, target=10.0),
           Part("sharpness", ("milora",), ("lora",), "within", FACTOR_2, target=2.0),
           Part("tuned_lr", ("lora",), ("milora",), "within", FACTOR_2, target=3.0))),
    Claim(13, "LoRA learns less and forgets less than full fine-tuning", "Biderman et al. 2024",
          "shifted-task test loss and base-task test loss after adaptation, LoRA / full FT", ("quality",),
          (Part("test_loss", ("lora",), ("full",), "greater"), Part("forgetting", ("lora",), ("full",), "less"))),
    Claim(14, "with alpha / r scaling, LoRA's best learning rate barely depends on rank",
          "LoRA Without Regret (Thinking Machines 2025)",
          "interpolated tuned LR of LoRA with alpha fixed, ranks 1-64: the change from rank 1 to 64 of a line "
          "fitted in log lr vs log rank (seeds resampled, LRs re-tuned), within a factor of 2", ("quality",),
          (Part("rank_lr", ("lora",), (), "within", FACTOR_2),)),
)


# --- transfer: one testbed's ranking of the methods against another's -------------------------------

def log_losses(records: Sequence[dict], key: str = "test_loss") -> dict[str, np.ndarray]:
    """method -> log10 of ``summary[key]`` per seed, on the seeds every method has (sorted), from
    records at each method's tuned lr; a method with no finite positive value on those seeds is left out."""
    values: dict[str, dict[int, float]] = {}
    for r in records:
        value = r["summary"].get(key)
        if value is not None and value > 0 and math.isfinite(value):
            values.setdefault(r["method"], {})[r["seed"]] = math.log10(value)
    if not values:
        return {}
    seeds = sorted(set.intersection(*(set(v) for v in values.values())))
    return {m: np.array([v[s] for s in seeds]) for m, v in values.items()} if seeds else {}


def ranks(losses: dict[str, np.ndarray]) -> dict[str, float]:
    """method -> its rank by mean log loss over seeds (1 the lowest; ties share the mean rank)."""
    from scipy import stats

    methods = list(losses)
    return dict(zip(methods, stats.rankdata([losses[m].mean() for m in methods]).tolist(), strict=True))
