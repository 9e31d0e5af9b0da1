"""The timing runner the timing studies share: their settings, the cells ``--quick`` times, the
interleaved sweep into a store, the ``--rounds`` flag and the checks printed beside their tables."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from nfl.config import ExperimentConfig
from nfl.measure.blocks import BlockTimer
from nfl.measure.clocks import CLOCK_LABELS, clock_for
from nfl.measure.devices import device_name
from nfl.measure.policy import (
    BLOCK_S,
    LOADED,
    MAX_ROUNDS,
    MIN_ROUNDS,
    QUICK_MAX_ROUNDS,
    QUICK_WARMUP,
    REPEATS,
    WARMUP,
)
from nfl.measure.rounds import NOISE_RULE, StopRule, clock_label, run_rounds
from nfl.results import CELL_FIELDS, ResultStore, environment
from nfl.sweep import Cell, SweepInterrupted


class TimedStudy(Protocol):
    """What the runner needs of a study's parsed command line (``studies.common.StudySetup``)."""

    args: argparse.Namespace
    config: ExperimentConfig
    device: torch.device
    out: Path
    quick: bool
    seeds: list[int]
    failed: list[dict[str, Any]]  # failed records of this run, for the study's tables and exit status
    cells_run: list[Cell]

    def cells(self, study: str, seeds: Sequence[int] | None = None, plan: dict | None = None) -> list[Cell]: ...

    def plan(self, ranks: Sequence[int] | None) -> dict[str, list[int | None]]: ...

    def prepare_out(self) -> None: ...

    def command(self, resume: bool = False) -> str: ...

    def rerun_command(self, cell: Cell) -> str: ...


def threads(n: int) -> str:
    """``1 thread``, ``2 threads``."""
    return f"{n} thread" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class TimingSettings:
    """How a timing study measures: rounds, the block each round times, threads and clock."""

    rule: StopRule
    warmup: int
    block_s: float  # a block lasts at least this long on the clock (seconds)
    threads: int
    clock: str
    device_name: str
    quick: bool

    def seconds_per_block(self) -> float:
        """An estimate of one cell's round: its blocks overshoot the target by about 15% (trimmed
        calibration, nfl.measure.blocks.BlockTimer), plus the warm call and the record's write
        (measured on 2 idle cores: 7.8 ms a cell and round with 2 ms blocks)."""
        return REPEATS * 1.15 * self.block_s + 0.001

    def measurement(self) -> str:
        """The part of a cell's identity that changes its numbers (rounds excepted: each round is
        stored apart, so a resumed run may allow more)."""
        mode = "quick" if self.quick else "full"
        blocks = f"fastest of {REPEATS} blocks >= {1e3 * self.block_s:g} ms"
        return f"{mode}, {threads(self.threads)}, {self.clock}, {blocks}, {self.device_name}"


def timing_settings(setup: TimedStudy) -> TimingSettings:
    """One CPU thread unless ``--threads`` (these models are far too small to share out);
    ``--quick`` allows fewer rounds and warm-up calls."""
    on_cpu = setup.device.type == "cpu"
    count = (setup.args.threads or 1) if on_cpu else torch.get_num_threads()
    most = vars(setup.args).get("rounds") or (QUICK_MAX_ROUNDS if setup.quick else MAX_ROUNDS)
    rule = StopRule(max_rounds=most, min_rounds=min(most, MIN_ROUNDS))
    warmup = QUICK_WARMUP if setup.quick else WARMUP
    clock = clock_for(setup.device, count)
    return TimingSettings(rule, warmup, BLOCK_S, count, clock, device_name(setup.device), setup.quick)


def quick_plan(plan: dict[str, list[int | None]], defaults: dict[str, list[int | None]]) -> dict[str, list[int | None]]:
    """The ranks ``--quick`` times of ``plan``: each method's default rank and the ends of its range."""
    quick = {}
    for method, ranks in plan.items():
        ends = {min(r for r in ranks if r is not None), max(r for r in ranks if r is not None)} if any(ranks) else set()
        kept = ends | {r for r in defaults.get(method, []) if r in ranks}
        quick[method] = [r for r in ranks if r in kept] or ranks[:1]
    return quick


def run_timed(
    setup: TimedStudy, study: str, plan: dict | None, prepare: Callable[[Cell], tuple[Callable[[], Any], dict]]
) -> list[dict[str, Any]]:
    """Time the cells of ``study`` in interleaved rounds into ``<out>/<study>.jsonl``; with ``--quick``
    and no ``--ranks``, only each method's default rank and the ends of the rank range.

    ``prepare(cell)`` returns the callable to time and the record fields beside the timing; it
    runs once per cell, at the cell's first block. Exits 130 (SIGINT) or 143 (SIGTERM) with a resume hint if stopped.
    """
    settings = timing_settings(setup)
    plan = setup.method_ranks if plan is None else plan
    if setup.quick and setup.args.ranks is None:
        plan = quick_plan(plan, setup.plan(None))
    cells = [dataclasses.replace(c, measurement=settings.measurement())
             for c in setup.cells(study, setup.seeds[:1], plan)]
    setup.prepare_out()
    env = {**environment(setup.device), "cpu_threads": settings.threads}  # the timings' threads, not the study's
    context = {"command": setup.command(), "config": setup.config.to_dict(), "config_hash": setup.config.digest(),
               "env": env}

    def timed(cell: Cell) -> tuple[Callable[[], dict[str, Any]], dict[str, Any]]:
        fn, fields = prepare(cell)
        timer = BlockTimer(fn, setup.device, settings.threads, warmup=settings.warmup, target_s=settings.block_s)
        return timer, {**fields, "rerun": setup.rerun_command(cell)}

    store = ResultStore(setup.out / f"{study}.jsonl")
    try:
        records = run_rounds(cells, timed, store, rule=settings.rule, seed=setup.config.seed, context=context,
                             resume=setup.args.resume, desc=study, seconds_per_block=settings.seconds_per_block())
    except SweepInterrupted as stop:
        print(f"{stop} (one per cell and round); resume with: {setup.command(resume=True)}", file=sys.stderr)
        raise SystemExit(stop.exit_status) from None
    for record in records:
        record["timing"].update(num_threads=settings.threads, device_name=settings.device_name)
    _note_failures(setup, cells, records, store)
    return records


def _note_failures(setup: TimedStudy, cells: list[Cell], records: list[dict[str, Any]], store: ResultStore) -> None:
    """A cell none of whose rounds was measured (its method failed to build or run) goes to the study's
    failed records, its latest failure for each, so that its tables list it and the run exits as others do."""
    timed = {(r["method"], r["rank"]) for r in records}
    latest = {(r["method"], r["rank"]): r for r in store.records()
              if "failed" in r and r.get("study") == cells[0].study and (r["method"], r["rank"]) not in timed}
    setup.failed += list(latest.values())
    setup.cells_run += [c for c in cells if (c.method, c.rank) in timed]
    setup.cells_run += [Cell(**{name: r.get(name) for name in CELL_FIELDS}) for r in latest.values()]


def add_rounds_argument(parser: argparse.ArgumentParser) -> None:
    """``--rounds N``: the most interleaved rounds a cell of the study's timing sweeps gets."""
    def positive(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
        return int(text)

    rule = StopRule(MAX_ROUNDS)
    parser.add_argument(
        "--rounds", type=positive, default=None,
        help=f"the most interleaved timing rounds a cell gets (default {MAX_ROUNDS}, {QUICK_MAX_ROUNDS} with --quick); "
             f"a cell stops after {rule.min_rounds} once its fastest round is reproduced within {rule.tolerance:.0%} "
             f"by {rule.confirmations} others")


def quick_note(records: list[dict[str, Any]]) -> str:
    """``", --quick: ..."`` for a figure's subtitle when the timings were taken with ``--quick``, else empty."""
    if not any(str(r.get("measurement", "")).startswith("quick") for r in records):
        return ""
    return f", --quick: timings at default ranks and the range's ends, at most {QUICK_MAX_ROUNDS} rounds"


def checks(records: list[dict[str, Any]]) -> list[str]:
    """What the timings can and cannot be trusted for: how they were taken, load, noise."""
    t = records[0]["timing"]
    rounds = sorted(r["timing"]["rounds"] for r in records)
    median = rounds[len(rounds) // 2]
    spread = f"{rounds[0]}" if rounds[0] == rounds[-1] else f"{rounds[0]}-{rounds[-1]} (median {median})"
    lines = [
        f"timings: ms per call, the fastest of {spread} interleaved rounds (the median beside it), "
        f"{clock_label(records)}, {threads(t['num_threads'])}, {t['device_name']}; * = noisy ({NOISE_RULE})"
    ]
    if t["clock"] == "wall" and t["num_threads"] > 1:
        lines.append(f"cannot measure: the thread's CPU time with {t['num_threads']} threads (their work runs on other "
                     "threads); wall time used, which other processes inflate -- --threads 1 avoids this")
    if t["clock"] == "thread_cpu":
        load = float(np.median([r["timing"]["wall_median_s"] / r["timing"]["median_s"] for r in records]))
        if load > LOADED:
            lines.append(f"load: wall time was {load:.1f}x the thread CPU time (median over cells): other processes "
                         f"held the cores; the {CLOCK_LABELS['thread_cpu']} is what a step costs, wall what you waited")
    slowed = float(np.median([r["timing"]["median_s"] / r["timing"]["fastest_s"] for r in records]))
    if slowed > LOADED:
        lines.append(f"load: the median round ran {slowed:.2f}x the fastest (median over cells): the machine was "
                     "busy; the fastest rounds are the costs, compare the medians with care")
    return lines
