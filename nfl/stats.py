"""Summary statistics over seeds: mean with a Student-t 95% confidence interval."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
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
