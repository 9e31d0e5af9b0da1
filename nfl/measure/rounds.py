"""Timing in interleaved rounds until each cell's cost is confirmed: a busy machine slows every
cell alike instead of whichever is being timed when the load arrives, and a cell stops being timed
once more rounds would not change its cost.

Each round times every open (method, rank) cell once, as one block of calls, in an order shuffled
from (seed, round). A cell's cost is its fastest round; the median and quartiles over its rounds
say how much load it met. Load only ever adds time, and the rounds give every cell chances, spread
over the sweep, at a quiet moment: with two processes spinning both cores of a 2-core machine,
LoRA's fastest round over PiSSA's (identical math) stayed within 0.92-1.06 at every rank in 14 runs
of 14, where the ratio of medians left 0.9-1.1 in 7 of them (docs/design.md has the runs).

When to stop (:class:`StopRule`) is the idea of ``torch.utils.benchmark``'s ``adaptive_autorange``
-- measure until a spread statistic is small, between a minimum and a maximum -- on the lower tail,
since load only adds time: a cell is *confirmed* once its fastest round has been reproduced within a
tolerance by enough of its other rounds, and then leaves the rounds; the cells still open go on
being interleaved. A cell that reaches the maximum unconfirmed is noisy (its cost rests on a lucky
round or the load never let up). The block itself is calibrated as ``timeit``'s autorange does
(:class:`nfl.measure.blocks.BlockTimer`); the constants are in :mod:`nfl.measure.policy`.

The store holds, per run, one run context (config, command, environment), per cell one record of
what is fixed (its summary, its rerun command), and per (cell, round) one small record of the block
-- the round is part of the cell's ``measurement`` -- written as it is measured, so a stopped sweep
loses at most the block being timed and ``--resume`` continues where it stopped. :func:`aggregate`
joins them back into one record per cell when reading.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapters import registration_order
from nfl.cli import duration
from nfl.measure.clocks import CLOCK_LABELS
from nfl.measure.policy import CONFIRM_TOLERANCE, CONFIRMATIONS, MIN_ROUNDS, MISS_CHANCE, PEER_COST
from nfl.results import CONTEXT, ResultStore, context_record, record_key
from nfl.sweep import Cell, run_cells

NOISE_HELP = "a higher maximum (--rounds), a quieter machine"


@dataclass(frozen=True)
class StopRule:
    """How many rounds a cell gets: at least ``min_rounds`` and at most ``max_rounds``; in between,
    until it is *settled*: its fastest round reproduced within ``tolerance`` (relative) by
    ``confirmations`` other rounds (it is *confirmed*), and enough rounds taken that all of them
    missing a quiet moment has a chance of at most ``miss_chance``, a quiet round coming as often
    as the rounds of cells of a similar cost have come within the tolerance of their cell's fastest
    so far (:meth:`quiet_shares`). On a quiet machine that is a few rounds; under load, up to the
    maximum."""

    max_rounds: int
    min_rounds: int = MIN_ROUNDS
    tolerance: float = CONFIRM_TOLERANCE
    confirmations: int = CONFIRMATIONS
    miss_chance: float = MISS_CHANCE

    def __post_init__(self) -> None:
        if not 1 <= self.min_rounds <= self.max_rounds:
            raise ValueError(f"need 1 <= min_rounds <= max_rounds, got {self.min_rounds}, {self.max_rounds}")

    def confirmed(self, seconds: Sequence[float]) -> bool:
        """Whether the fastest of ``seconds`` is reproduced within the tolerance by enough others."""
        ordered = sorted(seconds)
        k = self.confirmations
        return len(ordered) > k and ordered[k] <= (1 + self.tolerance) * ordered[0]

    def quiet_shares(self, cells: Sequence[Sequence[float]]) -> list[float]:
        """For each cell, how often a round is quiet on this machine now for calls of its cost: the
        share of the rounds of the cells whose fastest is within ``PEER_COST`` times its own (each
        cell's fastest left out) that came within the tolerance of their cell's fastest (0 without
        evidence). Calls of a similar cost meet load alike; a 0.7 ms SVD is cut far more often than
        a 0.1 ms copy, so one share for all would settle the SVDs on slowed rounds."""
        tallies = [(min(s), sum(x <= (1 + self.tolerance) * min(s) for x in s) - 1, len(s) - 1) for s in cells if s]
        shares = []
        for seconds in cells:
            fastest = min(seconds, default=0.0)
            peers = [(near, total) for f, near, total in tallies
                     if fastest <= PEER_COST * f and f <= PEER_COST * fastest]
            total = sum(t for _, t in peers)
            shares.append(sum(n for n, _ in peers) / total if seconds and total else 0.0)
        return shares

    def open(self, seconds: Sequence[float], quiet_share: float) -> bool:
        """Whether a cell with these rounds gets another one, rounds being quiet this often."""
        n = len(seconds)
        if n < self.min_rounds:
            return True
        settled = self.confirmed(seconds) and (1 - quiet_share) ** n <= self.miss_chance
        return n < self.max_rounds and not settled

    def words(self) -> str:
        """The rule in words, for announcements."""
        if self.min_rounds == self.max_rounds:
            return f"{self.max_rounds} interleaved rounds each"
        return (f"{self.min_rounds}-{self.max_rounds} interleaved rounds each, until its fastest is reproduced within "
                f"{self.tolerance:.0%} by {self.confirmations} others in enough rounds for the load")

    def noise_rule(self) -> str:
        """What makes a cell noisy, in words."""
        return f"its fastest round not reproduced within {self.tolerance:.0%} by {self.confirmations} others"


NOISE_RULE = StopRule(max_rounds=MIN_ROUNDS).noise_rule()


def round_cell(cell: Cell, round_index: int) -> Cell:
    """The identity of ``cell``'s measurement in round ``round_index`` (0-based)."""
    return dataclasses.replace(cell, measurement=f"{cell.measurement}, round {round_index}")


def round_order(cells: Sequence[Cell], seed: int, round_index: int) -> list[Cell]:
    """``cells`` in the order of round ``round_index``: a permutation drawn from (seed, round),
    the same on every run, different from round to round."""
    permutation = np.random.default_rng([seed, round_index]).permutation(len(cells))
    return [cells[i] for i in permutation]


def run_rounds(
    cells: Sequence[Cell], prepare: Callable[[Cell], tuple[Callable[[], dict[str, Any]], dict[str, Any]]],
    store: ResultStore, *, rule: StopRule, seed: int, context: dict[str, Any], resume: bool = False,
    desc: str = "timing", seconds_per_block: float | None = None,
) -> list[dict[str, Any]]:
    """Time ``cells`` in interleaved rounds under ``rule`` into ``store``; return one aggregated
    record per cell, in the order of ``cells``.

    ``prepare(cell)`` returns the cell's timer (each call one block, see
    :class:`nfl.measure.blocks.BlockTimer`) and the fields fixed for the cell; it runs at the cell's
    first round in this process. ``context`` (config, command, environment) is stored once and
    named by every cell's record. The first ``rule.min_rounds`` rounds of every cell run as one
    sweep; after that, round by round, only the cells still open. Rounds already in the store are
    kept with ``resume``; without it, an existing store is set aside first as :func:`run_cells`
    does. ``seconds_per_block``, an estimate of one block, makes the announcement give the time.
    A stop request ends the sweep after the current block (:class:`nfl.sweep.SweepInterrupted`).
    """
    run = context_record(context)
    found = {record_key(r): r for r in store.records()} if resume and store.path.exists() else {}
    blocks = {c: _blocks(c, found, rule.max_rounds) for c in cells}  # cell -> round index -> block
    have = {c for c in cells if c.key() in found}
    held = store.contexts() if found else set()
    timers: dict[Cell, Callable[[], dict[str, Any]]] = {}
    which: dict[Cell, tuple[Cell, int]] = {}  # the cell and round of each round's identity

    def measure(identity: Cell) -> dict[str, Any]:
        cell, index = which[identity]
        if cell not in timers:
            timers[cell], fields = prepare(cell)
            if cell not in have:  # what is fixed for the cell, once, naming the context it was made in
                if run[CONTEXT] not in held:
                    store.append(run)
                    held.add(run[CONTEXT])
                store.append({**cell.to_dict(), **fields, CONTEXT: run[CONTEXT]})
                have.add(cell)
        block = blocks[cell][index] = timers[cell]()
        return {"round": index, "block": block}

    def seconds(cell: Cell) -> list[float]:
        return [b["seconds"] for b in blocks[cell].values()]

    def sweeps() -> Iterator[tuple[str, list[tuple[Cell, int]]]]:
        """The minimum rounds of every cell as one sweep (one pass over the store), then round by
        round the cells still open, each at the round after its last; evaluated as they come."""
        yield f"rounds 1-{rule.min_rounds}", [
            (c, r) for r in range(rule.min_rounds) for c in round_order(cells, seed, r) if r not in blocks[c]
        ]
        for index in range(rule.min_rounds, rule.max_rounds):
            quiet = dict(zip(cells, rule.quiet_shares([seconds(c) for c in cells])))
            yield f"round {index + 1}", [
                (c, index) for c in round_order(cells, seed, index)
                if rule.open(seconds(c), quiet[c]) and max(blocks[c], default=-1) + 1 == index
            ]

    ours = {c.key() for c in cells} | {round_cell(c, r).key() for c in cells for r in range(rule.max_rounds)}
    unused = sum(key not in ours for key in found)
    _announce(desc, rule, len(cells), sum(map(len, blocks.values())), unused, seconds_per_block)
    started = resume
    for label, due in sweeps():
        if not due:
            continue
        identities = [round_cell(c, r) for c, r in due]
        which.update(zip(identities, due))
        run_cells(identities, measure, store, started, desc=f"{desc}, {label}", seconds_per_cell=seconds_per_block,
                  announce=False)
        started = True
    return aggregate(cells, store.records(), rule)


def _announce(desc: str, rule: StopRule, cells: int, done: int, unused: int, seconds_per_block: float | None) -> None:
    """Up front: the cells, the rule, the time the minimum and the maximum would take, and the
    records of other settings left in the store."""
    about = ""
    if seconds_per_block is not None:
        low, high = (seconds_per_block * cells * n for n in (rule.min_rounds, rule.max_rounds))
        about = f", about {duration(low)} (at most {duration(high)}, estimates)"
    kept = f"; {done} rounds already in the store" if done else ""
    print(f"{desc}: {cells} cells, {rule.words()}{about}{kept}", file=sys.stderr)
    if unused:
        other = "made with other settings (config, measurement, device)"
        print(f"note: {unused} record(s) {other} are kept but not reused", file=sys.stderr)


def _blocks(cell: Cell, found: dict[tuple, dict[str, Any]], max_rounds: int) -> dict[int, dict[str, Any]]:
    """Round index -> block of ``cell``'s rounds in ``found`` (records by key), below ``max_rounds``; a
    round recorded as failed (its method could not be built or run) has no block and is left out."""
    keys = ((r, round_cell(cell, r).key()) for r in range(max_rounds))
    return {r: found[k]["block"] for r, k in keys if k in found and "block" in found[k]}


def aggregate(cells: Sequence[Cell], records: Sequence[dict[str, Any]], rule: StopRule) -> list[dict[str, Any]]:
    """One record per cell of ``cells`` that has at least one round below ``rule.max_rounds`` in
    ``records``: the cell's record of what is fixed (in a store written before those existed, its
    first round's record), with the ``timing`` over all its rounds (see :func:`summarise`), in the
    methods' registration order and by rank (the rounds ran shuffled: a store read later by
    ``studies.report`` gives the same table as the study printed)."""
    found = {record_key(r): r for r in records}
    out = []
    for cell in sorted(cells, key=lambda c: (registration_order(c.method), -1 if c.rank is None else c.rank)):
        blocks = _blocks(cell, found, rule.max_rounds)
        if not blocks:
            continue
        fixed = found.get(cell.key()) or found[round_cell(cell, min(blocks)).key()]
        fixed = {k: v for k, v in fixed.items() if k not in ("block", "round")}
        out.append({**fixed, **cell.to_dict(), "timing": summarise(list(blocks.values()), rule)})
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
    rule = StopRule(max_rounds=max(cells.values(), default=1), min_rounds=1)
    out = aggregate(list(cells), records, rule)
    for record in out:  # as the timing studies complete them: the threads and device they ran on
        record["timing"].update(num_threads=record["env"]["cpu_threads"], device_name=record["env"]["device_name"])
    return out


def summarise(blocks: Sequence[dict[str, Any]], rule: StopRule | None = None) -> dict[str, Any]:
    """A cell's timing from its rounds' blocks (seconds per call): the fastest (its cost), the
    round that confirms it (the ``rule.confirmations``-th fastest after it), the median and
    quartiles, on the blocks' clock and on the wall clock, and whether the cost is confirmed by
    ``rule`` (default: the policy's) or noise."""
    rule = rule or StopRule(max_rounds=max(len(blocks), MIN_ROUNDS))
    clocks = {b["clock"] for b in blocks}
    if len(clocks) != 1:
        raise ValueError(f"the rounds of one cell were measured on different clocks: {sorted(clocks)}")
    seconds, wall = [b["seconds"] for b in blocks], [b["wall_s"] for b in blocks]
    q1, median, q3 = quartiles(seconds)
    confirmed = rule.confirmed(seconds)
    ordered = sorted(seconds)
    return {
        "clock": clocks.pop(), "fastest_s": ordered[0], "median_s": median, "q1_s": q1, "q3_s": q3,
        # the slowest of the rounds that confirm the fastest (within the tolerance when confirmed)
        "confirming_s": ordered[min(rule.confirmations, len(ordered) - 1)],
        "wall_fastest_s": min(wall), "wall_median_s": quartiles(wall)[1], "rounds": len(blocks),
        "calls_per_round": [b["calls"] for b in blocks], "confirmed": confirmed, "noisy": not confirmed,
    }


def quartiles(times: Sequence[float]) -> tuple[float, float, float]:
    """First quartile, median, third quartile (linear interpolation)."""
    p25, p50, p75 = np.percentile(np.asarray(times, dtype=np.float64), [25, 50, 75])
    return float(p25), float(p50), float(p75)


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
    noisy: dict[str, list[str]] = {}  # in the records' order: aggregate's, registration order and rank
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
