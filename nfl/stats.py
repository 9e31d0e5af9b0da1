"""Summary statistics over seeds: t-intervals, paired differences, sign-flip intervals, geometric means.

Quality metrics (losses, gradient norms) are log-normal-ish across seeds, so they are summarised on a
log scale: a geometric mean with a multiplicative (×/÷) 95% interval, and two methods compared by
the per-seed difference of their log metrics (at one seed both adapt the same pretrained model on
the same data, so the difference cancels what the seed shares).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
SIGN_FLIP_EXACT = 14  # up to 2**14 sign patterns are enumerated; beyond, a seeded random sample of them
SIGN_FLIP_SAMPLES = 8192


def mean_ci(
    values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean over ``axis`` and the half-width of its t-interval (0 for a single value)."""
    values = np.asarray(values, dtype=float)
    mean = values.mean(axis=axis)
    n = values.shape[axis]
    if n < 2:
        return mean, np.zeros_like(mean)
    from scipy import stats  # here, not at import: scipy.stats alone costs seconds of start-up

    half = stats.sem(values, axis=axis) * stats.t.ppf((1 + confidence) / 2, n - 1)
    return mean, half


def format_mean_ci(values: Sequence[float], digits: int = 4) -> str:
    """``mean ± half-width`` of the 95% interval; one value prints as ``value (n = 1)``, never
    with a "± 0" that would claim a certainty one run cannot give."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (n = 1)"
    mean, half = mean_ci(values)
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


@dataclass(frozen=True)
class Geometric:
    """A geometric mean over seeds and its 95% interval ``[mean / factor, mean * factor]``
    (the t-interval of the log values; ``factor`` is 1 for a single value, which has no interval)."""

    mean: float
    factor: float
    n: int

    @property
    def low(self) -> float:
        return self.mean / self.factor

    @property
    def high(self) -> float:
        return self.mean * self.factor


def geometric_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> Geometric:
    """The geometric mean of positive ``values`` with its ×/÷ t-interval on the log scale."""
    logs = np.log(np.asarray(values, dtype=float))
    mean, half = mean_ci(logs, confidence)
    return Geometric(float(np.exp(mean)), float(np.exp(half)), logs.size)


def paired_t(differences: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean of per-seed differences and its paired t-interval (scipy's one-sample t):
    (estimate, low, high); infinite bounds below two seeds, the point itself without spread."""
    d = np.asarray(differences, dtype=float)
    if d.size == 0:
        return math.nan, -math.inf, math.inf
    estimate = float(d.mean())
    if d.size < 2:
        return estimate, -math.inf, math.inf
    if np.ptp(d) == 0:  # deterministic runs: no spread, the interval is the point
        return estimate, estimate, estimate
    from scipy import stats

    ci = stats.ttest_1samp(d, 0.0).confidence_interval(confidence)
    return estimate, float(ci.low), float(ci.high)


def sign_flip_computable(n: int, confidence: float = CONFIDENCE) -> bool:
    """Whether a two-sided sign-flip test on ``n`` pairs can reject at all: its smallest p-value
    is 2 / 2**n (all signs alike), so it needs n >= 6 at 95%; below, the interval is unbounded."""
    return n >= 1 and 2.0 / 2**n <= 1 - confidence


def _sign_patterns(n: int, seed: int) -> np.ndarray:
    """(P, n) matrix of ±1: every pattern up to ``SIGN_FLIP_EXACT`` pairs, else a seeded sample
    (with the identity pattern first, so the observed statistic always counts)."""
    if n <= SIGN_FLIP_EXACT:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        return 1 - 2 * bits.astype(float)
    rng = np.random.default_rng(seed)
    patterns = rng.choice([-1.0, 1.0], size=(SIGN_FLIP_SAMPLES, n))
    patterns[0] = 1.0
    return patterns


def _flip_p(centred: np.ndarray, patterns: np.ndarray) -> float:
    """Share of sign patterns whose |sum| reaches the observed one (a relative tolerance keeps the
    observed pattern and its mirror counted despite rounding)."""
    return float(np.mean(np.abs(patterns @ centred) >= abs(float(centred.sum())) * (1 - 1e-12) - 1e-15))


def sign_flip_p(differences: Sequence[float], shift: float = 0.0, seed: int = 0) -> float:
    """Two-sided p-value of the sign-flip (permutation) test that the differences are symmetric
    about ``shift``."""
    d = np.asarray(differences, dtype=float)
    return _flip_p(d - shift, _sign_patterns(d.size, seed))


def sign_flip_interval(
    differences: Sequence[float], confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float]:
    """The interval of shifts the sign-flip test does not reject (test inversion, each end by
    bisection between the mean and the extreme difference); (-inf, inf) where it cannot reject."""
    d = np.asarray(differences, dtype=float)
    if not sign_flip_computable(d.size, confidence):
        return -math.inf, math.inf
    alpha, mean = 1 - confidence, float(d.mean())
    patterns = _sign_patterns(d.size, seed)

    def rejected(shift: float) -> bool:
        return _flip_p(d - shift, patterns) <= alpha

    def end(outer: float) -> float:
        inner = mean  # not rejected (p = 1 at the mean); ``outer`` is rejected (every sign alike)
        for _ in range(60):
            middle = (inner + outer) / 2
            inner, outer = (inner, middle) if rejected(middle) else (middle, outer)
        return float(outer)

    return end(float(d.min()) - 1e-12 * (1 + abs(d.min()))), end(float(d.max()) + 1e-12 * (1 + abs(d.max())))


def kendall_tau_interval(
    a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Kendall's tau between two rankings of the same methods, each by its mean over seeds (``a``:
    methods x seeds on one testbed, ``b``: methods x seeds on another), with a percentile interval
    from resampling each one's seeds independently (two testbeds' seeds are not paired):
    (tau, low, high). A resample whose means tie throughout has no tau and is left out."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape[0] != b.shape[0] or a.shape[0] < 2:
        raise ValueError(f"Kendall's tau needs the same >= 2 methods on both sides, got {a.shape[0]} and {b.shape[0]}")
    tau = float(stats.kendalltau(a.mean(axis=1), b.mean(axis=1)).statistic)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        mean_a = a[:, rng.integers(0, a.shape[1], a.shape[1])].mean(axis=1)
        mean_b = b[:, rng.integers(0, b.shape[1], b.shape[1])].mean(axis=1)
        draws.append(stats.kendalltau(mean_a, mean_b).statistic)
    low, high = np.nanquantile(np.array(draws, dtype=float), [(1 - confidence) / 2, (1 + confidence) / 2])
    return tau, float(low), float(high)
