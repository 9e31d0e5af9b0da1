"""Selection on validation, report on test: the step of a run and the learning rate of a method.

A run's selected step is the argmin of its validation loss (the earliest on a tie); what it reports
is the test loss at that step. A (method, rank)'s learning rate is the grid point with the lowest
mean, over seeds, of its runs' minimum validation loss. A grid point where any seed diverged is
never selected; between grid points with equal means the smaller learning rate wins (the one
farther from divergence). Nothing here reads a test loss to choose anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

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
    step = selected_step(history.val_loss)
    return {"selected_step": step, "min_val_loss": history.val_loss[step], "test_loss": history.test_loss[step]}


def select_lr(records: Iterable[Record]) -> float | None:
    """The learning rate of one (method, rank) from its records (one per seed and lr): lowest mean
    ``min_val_loss`` over seeds among the grid points where no seed diverged; None if there is none."""
    by_lr: dict[float, list[Record]] = {}
    for record in records:
        by_lr.setdefault(record["lr"], []).append(record["summary"])
    scores = {
        lr: float(np.mean([s["min_val_loss"] for s in runs]))
        for lr, runs in by_lr.items()
        if all(s.get("diverged_at") is None for s in runs)
    }
    return min(scores, key=lambda lr: (scores[lr], lr)) if scores else None


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
