"""Timing in interleaved rounds: a busy machine slows every cell alike instead of whichever is
being timed when the load arrives.

Each round times every (method, rank) cell once, as one block of calls, in an order shuffled
from (seed, round); a cell's timing is the median and quartiles of its blocks over the rounds,
after each round's common slowdown is divided out (:func:`round_factors`): on a shared machine
the speed of every cell drifts together over seconds (on 2 idle cores, whole rounds ran 1.7x
slower than others), and a round is the unit that sees one state of the machine.
The store holds one record per (cell, round) -- the round is part of the cell's ``measurement``
-- written as it is measured, so a stopped sweep loses at most the block being timed and
``--resume`` continues where it stopped. :func:`aggregate` turns the per-round records back
into one record per cell when reading.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from nfl.results import ResultStore
from nfl.sweep import Cell, record_key, run_cells
from nfl.timing import CLOCK_LABELS, quartiles

NOISY_IQR_FRACTION = 0.25  # a timing whose IQR exceeds this fraction of its median is marked noisy
NOISE_HELP = "more rounds (--rounds), a quieter machine"
# With fewer cells a round, its common slowdown is not told apart from the cells' own noise.
ROUND_EFFECT_MIN_CELLS = 8


def round_cell(cell: Cell, round_index: int) -> Cell:
    """The identity of ``cell``'s measurement in round ``round_index`` (0-based)."""
    return dataclasses.replace(cell, measurement=f"{cell.measurement}, round {round_index}")


def round_order(cells: Sequence[Cell], seed: int, round_index: int) -> list[Cell]:
    """``cells`` in the order of round ``round_index``: a permutation drawn from (seed, round),
    the same on every run, different from round to round."""
    permutation = np.random.default_rng([seed, round_index]).permutation(len(cells))
    return [cells[i] for i in permutation]


def run_rounds(
    cells: Sequence[Cell], measure_once: Callable[[Cell], dict[str, Any]], store: ResultStore, *, rounds: int,
    seed: int, resume: bool = False, desc: str = "timing", seconds_per_block: float | None = None,
) -> list[dict[str, Any]]:
    """Measure every cell once per round for ``rounds`` rounds, appending one record per (cell,
    round); return one aggregated record per cell, in the order of ``cells``.

    ``measure_once(cell)`` returns a record whose ``block`` is one block of the timer (see
    :class:`nfl.timing.BlockTimer`); ``seconds_per_block``, an estimate of one such call, makes
    the announcement give the sweep's time. Rounds already in the store are kept with ``resume``;
    without it, an existing store is set aside by the first round as :func:`run_cells` does.
    A stop request ends the sweep after the current block (:class:`nfl.sweep.SweepInterrupted`).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    # Every round in one sweep, round after round: one pass over the store, not one per round.
    order = [(round_cell(c, r), c, r) for r in range(rounds) for c in round_order(cells, seed, r)]
    base = {rc: (c, r) for rc, c, r in order}
    run_cells([rc for rc, _, _ in order], lambda rc: {"round": base[rc][1], **measure_once(base[rc][0])}, store,
              resume, desc=f"{desc}, {rounds} rounds", seconds_per_cell=seconds_per_block)
    return aggregate(cells, store.records(), rounds)


def aggregate(cells: Sequence[Cell], records: Sequence[dict[str, Any]], rounds: int) -> list[dict[str, Any]]:
    """One record per cell of ``cells`` that has at least one of rounds 0 ... ``rounds`` - 1 in
    ``records``: the first round's record, its ``block`` replaced by the ``timing`` over all of
    its rounds with the rounds' common slowdowns divided out (see :func:`summarise`)."""
    found = {record_key(r): r for r in records}
    measured = {cell: [found[k] for k in (round_cell(cell, r).key() for r in range(rounds)) if k in found] for cell in cells}
    measured = {cell: rows for cell, rows in measured.items() if rows}
    factors = {clock: round_factors([{m["round"]: m["block"][clock] for m in rows} for rows in measured.values()])
               for clock in ("seconds", "wall_s")}
    out = []
    for cell, rows in measured.items():
        first = {k: v for k, v in rows[0].items() if k not in ("block", "round")}
        per_block = {clock: [factors[clock][m["round"]] for m in rows] for clock in factors}
        timing = summarise([m["block"] for m in rows], per_block["seconds"], per_block["wall_s"])
        out.append({**first, **cell.to_dict(), "timing": timing})
    return out


def round_factors(series: Sequence[dict[int, float]]) -> dict[int, float]:
    """Each round's common slowdown, from every cell's time in each round (``series``: one
    {round: seconds} per cell): the median over cells of a cell's time that round relative to its
    own median -- one pass of Tukey's median polish on log times. A round with fewer than
    ``ROUND_EFFECT_MIN_CELLS`` cells measured gets 1 (nothing divided out)."""
    residuals: dict[int, list[float]] = {}
    for times in series:
        centre = float(np.median(np.log(list(times.values()))))
        for round_index, seconds in times.items():
            residuals.setdefault(round_index, []).append(float(np.log(seconds)) - centre)
    return {r: float(np.exp(np.median(v))) if len(v) >= ROUND_EFFECT_MIN_CELLS else 1.0 for r, v in residuals.items()}


def aggregate_stored(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`aggregate` of a store read later (``studies.report``): the cells are those its
    per-round records name, in first-seen order, with every round found."""
    cells: dict[Cell, int] = {}
    for record in records:
        if "block" not in record:
            continue
        fields = {name: record.get(name) for name in Cell.__dataclass_fields__}
        measurement, _, index = str(fields["measurement"]).rpartition(", round ")
        cell = Cell(**{**fields, "measurement": measurement})
        cells[cell] = max(cells.get(cell, 0), int(index) + 1)
    out = aggregate(list(cells), records, max(cells.values(), default=0))
    for record in out:  # as the timing studies complete them: the threads and device they ran on
        record["timing"].update(num_threads=record["env"]["cpu_threads"], device_name=record["env"]["device_name"])
    return out


def summarise(
    blocks: Sequence[dict[str, Any]], factors: Sequence[float] | None = None, wall_factors: Sequence[float] | None = None
) -> dict[str, Any]:
    """Median and quartiles over rounds of the blocks' seconds per call, each divided by its
    round's factor (:func:`round_factors`; none given: 1), on their clock and on the wall clock,
    beside the median of the raw seconds, and whether the spread makes the timing noise
    (:func:`is_noisy`)."""
    clocks = {b["clock"] for b in blocks}
    if len(clocks) != 1:
        raise ValueError(f"the rounds of one cell were measured on different clocks: {sorted(clocks)}")
    ones = [1.0] * len(blocks)
    seconds = [b["seconds"] / f for b, f in zip(blocks, factors or ones)]
    q1, median, q3 = quartiles(seconds)
    w1, wall, w3 = quartiles([b["wall_s"] / f for b, f in zip(blocks, wall_factors or ones)])
    timing = {
        "clock": clocks.pop(), "median_s": median, "q1_s": q1, "q3_s": q3, "iqr_s": q3 - q1,
        "wall_median_s": wall, "wall_iqr_s": w3 - w1, "rounds": len(blocks),
        "unadjusted_median_s": quartiles([b["seconds"] for b in blocks])[1],
        "largest_round_factor": max(factors or ones), "calls_per_round": [b["calls"] for b in blocks],
    }
    return {**timing, "noisy": is_noisy(timing)}


def is_noisy(timing: dict[str, Any], fraction: float = NOISY_IQR_FRACTION) -> bool:
    """True when the interquartile range over rounds exceeds ``fraction`` of the median."""
    return timing["iqr_s"] > fraction * timing["median_s"]


def format_ms(timing: dict[str, Any], digits: int = 3) -> str:
    """``median [q1, q3]`` in ms, a trailing ``*`` when noisy; with one round ``median (n = 1)``."""
    median = f"{1e3 * timing['median_s']:.{digits}f}"
    if timing["rounds"] == 1:
        return f"{median} (n = 1)"
    text = f"{median} [{1e3 * timing['q1_s']:.{digits}f}, {1e3 * timing['q3_s']:.{digits}f}]"
    return text + (" *" if timing["noisy"] else "")


def clock_label(records: Sequence[dict[str, Any]]) -> str:
    """The clock the timings were taken on, in words ("thread CPU time")."""
    clocks = sorted({r["timing"]["clock"] for r in records})
    return " / ".join(CLOCK_LABELS.get(c, c) for c in clocks)


def noisy_line(records: Sequence[dict[str, Any]], threads: int) -> str:
    """One line naming the noisy cells (ranks grouped by method) and what helps, or saying that
    none is."""
    noisy: dict[str, list[str]] = {}
    for r in records:
        if r["timing"]["noisy"]:
            noisy.setdefault(r["method"], []).append("-" if r["rank"] is None else str(r["rank"]))
    rule = f"IQR over rounds > {NOISY_IQR_FRACTION:.0%} of the median"
    if not noisy:
        return f"noise: no cell has {rule}"
    cells = "; ".join(f"{method} r={','.join(ranks)}" for method, ranks in noisy.items())
    helps = ("one thread (--threads 1), " if threads > 1 else "") + NOISE_HELP
    count = sum(map(len, noisy.values()))
    return f"noisy ({rule}, marked *): {count} of {len(records)} cells: {cells} -- what helps: {helps}"
