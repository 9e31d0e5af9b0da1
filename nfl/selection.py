"""Selection on validation, report on test: the step of a run and the learning rate of a method.

A run's selected step is the argmin of its validation loss (the earliest on a tie); what it reports
is the test loss at that step. A (method, rank)'s learning rate is the grid point with the lowest
mean, over seeds, of its runs' minimum validation loss. A grid point where any seed diverged is
never selected; between grid points with equal means the smaller learning rate wins (the one
farther from divergence). Nothing here reads a test loss to choose anything.

Where a claim needs the optimum between grid points (Learning Rate Matters' lr against sharpness),
it is the vertex of the parabola in log lr through the selected point and its two neighbours (of
log mean validation loss); at a grid edge, or beside a diverged point, it is the selected point.
A selected lr at the grid's edge asks for the grid to be extended (:func:`extension`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nfl.training import History

Record = dict[str, Any]
GroupKey = tuple[str, int | None]


def selected_step(val_loss: Sequence[float]) -> int:
    """The step with the lowest validation loss (0: before the first step); the earliest on a tie."""
    return int(np.argmin(val_loss))


def run_summary(history: History) -> dict[str, Any]:
    """``selected_step``, ``min_val_loss`` and ``test_loss`` at that step (None for a diverged run)."""
    if history.diverged_at is not None:
        return {"selected_step": None, "min_val_loss": None, "test_loss": None}
    index = selected_step(history.val_loss)  # evaluations come every history.eval_every steps
    return {"selected_step": index * history.eval_every, "min_val_loss": history.val_loss[index],
            "test_loss": history.test_loss[index]}


def lr_scores(records: Iterable[Record]) -> dict[float, float | None]:
    """Every lr of one (method, rank)'s records -> mean ``min_val_loss`` over its seeds, None where
    some seed diverged."""
    by_lr: dict[float, list[Record]] = {}
    for record in records:
        by_lr.setdefault(record["lr"], []).append(record["summary"])
    return {
        lr: float(np.mean([s["min_val_loss"] for s in runs])) if all(s.get("diverged_at") is None for s in runs)
        else None
        for lr, runs in sorted(by_lr.items())
    }


def best_lr(scores: dict[float, float | None]) -> float | None:
    """The lr of the lowest score (the smaller lr on a tie); None if every point diverged."""
    finite = {lr: v for lr, v in scores.items() if v is not None}
    return min(finite, key=lambda lr: (finite[lr], lr)) if finite else None


def select_lr(records: Iterable[Record]) -> float | None:
    """The learning rate of one (method, rank) from its records (one per seed and lr): lowest mean
    ``min_val_loss`` over seeds among the grid points where no seed diverged; None if there is none."""
    return best_lr(lr_scores(records))


def interpolated_lr(scores: dict[float, float | None]) -> float | None:
    """The optimum between grid points: the vertex of the parabola in (log lr, log score) through
    the best point and its neighbours; the best point itself at an edge or beside a diverged one."""
    lrs = sorted(scores)
    table = np.array([[np.nan if scores[lr] is None else scores[lr]] for lr in lrs], dtype=float)
    tuned = float(interpolated_lrs(lrs, table)[0]) if lrs else math.nan
    return None if math.isnan(tuned) else tuned


def interpolated_lrs(lrs: Sequence[float], scores: np.ndarray) -> np.ndarray:
    """:func:`interpolated_lr` of every column of ``scores`` (len(lrs) x B, nan where a point diverged;
    ``lrs`` ascending) at once: (B,), nan where every point diverged. The best point is the first
    minimum (the smaller lr on a tie); the parabola through it and its neighbours is solved in
    closed form, and a flat or concave one (no interior minimum) leaves the best point."""
    lrs, scores = np.asarray(lrs, dtype=float), np.asarray(scores, dtype=float)
    finite = ~np.isnan(scores)
    best = np.where(finite, scores, np.inf).argmin(axis=0)
    out = lrs[best]
    out[~finite.any(axis=0)] = np.nan
    inner = np.flatnonzero((best > 0) & (best < len(lrs) - 1))
    if inner.size:
        rows = best[inner] + np.arange(-1, 2)[:, None]  # (3, k): each one's best point and its neighbours
        x, y = np.log10(lrs)[rows], np.log10(scores[rows, inner])  # y is nan beside a diverged point
        left = (y[1] - y[0]) / (x[1] - x[0])
        curvature = ((y[2] - y[1]) / (x[2] - x[1]) - left) / (x[2] - x[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            vertex = np.clip(-(left - curvature * (x[0] + x[1])) / (2 * curvature), x[0], x[2])
        bent = curvature > 0  # False where flat, concave or beside a diverged point
        out[inner[bent]] = 10 ** vertex[bent]
    return out


def grid_lattice(grid: Sequence[float]) -> tuple[float, float]:
    """(first lr, log10 step) of a log-spaced grid, the step from its two ends, so that a point
    extended by whole steps lands where the grid's own formula puts it (10 ** (-4 + 0.5 k) for the
    default), not on a product of rounded points (0.316 x 3.16 = 0.999)."""
    grid = sorted(grid)
    if len(grid) < 2:
        raise ValueError("a grid to extend needs at least two learning rates")
    return grid[0], math.log10(grid[-1] / grid[0]) / (len(grid) - 1)


def extension(scores: dict[float, float | None], lattice: tuple[float, float],
              bounds: tuple[float, float] = (1e-6, 10.0)) -> float | None:
    """The next lr to try when the selected one is the edge of all lrs tried: one step of the
    grid's ``lattice`` beyond it, within ``bounds``; None when the optimum is interior, when the
    point beyond it was tried and diverged (the selected lr is then not the edge of what was tried),
    or when a bound is reached."""
    chosen, lrs = best_lr(scores), sorted(scores)
    if chosen is None or lrs[0] < chosen < lrs[-1]:
        return None
    anchor, step = lattice
    k = round(math.log10(chosen / anchor) / step) + (1 if chosen == lrs[-1] else -1)
    candidate = float(f"{10 ** (math.log10(anchor) + k * step):.3g}")
    return candidate if bounds[0] * (1 - 1e-9) <= candidate <= bounds[1] * (1 + 1e-9) else None


def seed_table(records: Iterable[Record], key: str = "min_val_loss") -> tuple[list[float], list[int], np.ndarray]:
    """One (method, rank)'s ``summary[key]`` as an (lrs x seeds) array, nan where a run diverged
    or is missing; lrs and seeds sorted."""
    records = list(records)
    lrs, seeds = sorted({r["lr"] for r in records}), sorted({r["seed"] for r in records})
    table = np.full((len(lrs), len(seeds)), np.nan)
    for r in records:
        value = r["summary"].get(key)
        if r["summary"].get("diverged_at") is None and value is not None:
            table[lrs.index(r["lr"]), seeds.index(r["seed"])] = value
    return lrs, seeds, table


def resampled_metric(records: Iterable[Record], key: str, resamples: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    """log10 of ``summary[key]`` per resampled seed at the grid lr selected on that resample, as
    :func:`select_lr` selects (lowest mean ``min_val_loss``, diverged points left out, the smaller lr
    on a tie): (B, n) for ``resamples`` (B, n) indices into ``seeds``; nan where nothing was selectable.
    The metric reported at a tuned lr carries the choice of that lr, itself an estimate from the seeds."""
    records = list(records)
    _, mine, table = seed_table(records)
    metric = seed_table(records, key)[2]  # the same lrs and seeds, in the same order
    columns = [mine.index(s) for s in seeds]
    scores = table[:, columns][:, resamples].mean(axis=2)  # (lrs, B); nan where a resampled seed diverged
    chosen = np.where(np.isnan(scores), np.inf, scores).argmin(axis=0)  # argmin takes the first, smaller lr
    picked = metric[:, columns][chosen[:, None], resamples]
    out = np.log10(picked, out=np.full_like(picked, np.nan), where=picked > 0)
    out[np.isnan(scores).all(axis=0)] = np.nan
    return out


def resampled_lrs(records: Iterable[Record], resamples: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    """The interpolated tuned lr of one (method, rank) re-selected on each resample of ``seeds``
    (``resamples``: (B, n) indices into ``seeds``): a grid point where a resampled seed diverged is
    left out, as in :func:`select_lr`; nan where every point did."""
    lrs, mine, table = seed_table(records)
    columns = table[:, [mine.index(s) for s in seeds]]
    return interpolated_lrs(lrs, columns[:, resamples].mean(axis=2))  # a diverged seed makes its point nan


@dataclass(frozen=True)
class Tuned:
    """One (method, rank) after tuning: its learning rate (None: every grid point diverged on some
    seed) and its records at that rate, one per seed."""

    method: str
    rank: int | None
    lr: float | None
    records: list[Record]


def groups(records: Iterable[Record]) -> dict[GroupKey, list[Record]]:
    """(method, rank) -> its records, in first-seen order."""
    out: dict[GroupKey, list[Record]] = {}
    for record in records:
        out.setdefault((record["method"], record["rank"]), []).append(record)
    return out


def tune(records: Iterable[Record]) -> list[Tuned]:
    """Every (method, rank) of ``records`` at its selected learning rate."""
    out = []
    for (method, rank), mine in groups(records).items():
        lr = select_lr(mine)
        out.append(Tuned(method, rank, lr, [r for r in mine if lr is not None and r["lr"] == lr]))
    return out


def at_tuned_lr(records: Iterable[Record]) -> list[Record]:
    """The records of each (method, rank) at its selected learning rate, for tables and figures."""
    return [record for tuned in tune(records) for record in tuned.records]
