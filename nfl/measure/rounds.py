"""Timing in interleaved rounds: a busy machine slows every cell alike instead of whichever is
being timed when the load arrives.

Each round times every (method, rank) cell once, as one block of calls, in an order shuffled
from (seed, round). A cell's cost is its fastest round; the median and quartiles over its rounds
say how much load it met. Load only ever adds time, and the rounds give every cell many chances,
spread over the whole sweep, at a quiet moment: with two processes spinning both cores of a
2-core machine, LoRA's fastest round over PiSSA's (identical math) stayed within 0.92-1.06 at
every rank in 14 runs of 14, where the ratio of medians left 0.9-1.1 in 7 of them, and in 2 of 6
even after dividing out the load that neighbouring blocks saw (docs/design.md has the runs).
The store holds one record per (cell, round) -- the round is part of the cell's ``measurement``
-- written as it is measured, so a stopped sweep loses at most the block being timed and
``--resume`` continues where it stopped. :func:`aggregate` turns the per-round records back
into one record per cell when reading.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from nfl.measure.clocks import CLOCK_LABELS
from nfl.measure.policy import NOISY_MARGIN
from nfl.results import ResultStore
from nfl.sweep import Cell, record_key, run_cells

NOISE_HELP = "more rounds (--rounds), a quieter machine"
NOISE_RULE = f"fewer than a quarter of its rounds within {NOISY_MARGIN:.0%} of the fastest"


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
    :class:`nfl.measure.blocks.BlockTimer`); ``seconds_per_block``, an estimate of one such call, makes
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
    its rounds (see :func:`summarise`)."""
    found = {record_key(r): r for r in records}
    out = []
    for cell in cells:
        measured = [found[k] for k in (round_cell(cell, r).key() for r in range(rounds)) if k in found]
        if not measured:
            continue
        first = {k: v for k, v in measured[0].items() if k not in ("block", "round")}
        out.append({**first, **cell.to_dict(), "timing": summarise([m["block"] for m in measured])})
    return out


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


def summarise(blocks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A cell's timing from its rounds' blocks (seconds per call): the fastest (its cost), the
    median and quartiles, on the blocks' clock and on the wall clock, and whether the cost is
    noise (:func:`is_noisy`)."""
    clocks = {b["clock"] for b in blocks}
    if len(clocks) != 1:
        raise ValueError(f"the rounds of one cell were measured on different clocks: {sorted(clocks)}")
    seconds, wall = [b["seconds"] for b in blocks], [b["wall_s"] for b in blocks]
    q1, median, q3 = quartiles(seconds)
    timing = {
        "clock": clocks.pop(), "fastest_s": min(seconds), "median_s": median, "q1_s": q1, "q3_s": q3,
        "wall_fastest_s": min(wall), "wall_median_s": quartiles(wall)[1], "rounds": len(blocks),
        "calls_per_round": [b["calls"] for b in blocks],
    }
    return {**timing, "noisy": is_noisy(timing)}


def quartiles(times: Sequence[float]) -> tuple[float, float, float]:
    """First quartile, median, third quartile (linear interpolation)."""
    p25, p50, p75 = np.percentile(np.asarray(times, dtype=np.float64), [25, 50, 75])
    return float(p25), float(p50), float(p75)


def is_noisy(timing: dict[str, Any], margin: float = NOISY_MARGIN) -> bool:
    """True when fewer than a quarter of the rounds came within ``margin`` of the fastest (the
    lower quartile lies beyond it)."""
    return timing["q1_s"] > (1 + margin) * timing["fastest_s"]


def format_ms(timing: dict[str, Any], digits: int = 3) -> str:
    """``fastest (median m)`` in ms, a trailing ``*`` when noisy; with one round ``fastest (n = 1)``."""
    fastest = f"{1e3 * timing['fastest_s']:.{digits}f}"
    if timing["rounds"] == 1:
        return f"{fastest} (n = 1)"
    text = f"{fastest} (median {1e3 * timing['median_s']:.{digits}f})"
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
    rule = NOISE_RULE
    if not noisy:
        return f"noise: no cell has {rule}"
    cells = "; ".join(f"{method} r={','.join(ranks)}" for method, ranks in noisy.items())
    helps = ("one thread (--threads 1), " if threads > 1 else "") + NOISE_HELP
    count = sum(map(len, noisy.values()))
    return f"noisy ({rule}, marked *): {count} of {len(records)} cells: {cells} -- what helps: {helps}"
