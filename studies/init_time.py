"""Initialisation time against trainable parameters: every method at ranks 1 ... 64.

Times everything a method does from a fresh pretrained layer on the device to a ready adapter
(argument checks, SVDs, random projections, copies), in interleaved rounds (nfl.rounds). This
module also holds what both timing studies share: settings, the rounds, the table and checks.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

import adapters
from nfl import cli
from nfl.model import target_layer_names
from nfl.devices import cpu_name
from nfl.results import ResultStore, environment
from nfl.rounds import NOISE_RULE, clock_label, format_ms, noisy_line, run_rounds
from nfl.sweep import Cell, SweepInterrupted
from nfl.timing import CLOCK_LABELS, BlockTimer, clock_for, prepared_init
from studies.common import SWEEP_RANKS, StudySetup, format_table, study_parser
from studies.outputs import Outputs, Stores, config_of

LOADED = 1.2  # wall / CPU time, or the median round over the fastest, above this (median over cells): busy
# Many short rounds rather than few long ones: on a loaded machine a cell's time drifts over
# seconds, and each round is one more chance at a quiet moment; a cell's cost is its fastest round
# (nfl.rounds). Each round keeps the fastest of REPEATS blocks (nfl.timing.BlockTimer). Under a
# competing load on 2 cores, 11 rounds of 6 blocks held LoRA/PiSSA worse than 21 rounds of 3, and
# 1 ms blocks worse than 2 ms; the pareto study's timing panels take QUICK_ROUNDS.
FULL_ROUNDS, QUICK_ROUNDS = 31, 21
REPEATS = 3


def threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class TimingSettings:
    """How a timing study measures: rounds, the block each round times, threads and clock."""

    rounds: int
    warmup: int
    block_s: float  # a block lasts at least this long on the clock (seconds)
    threads: int
    clock: str
    device_name: str
    quick: bool

    def seconds_per_block(self) -> float:
        """An estimate of one cell's round: its blocks overshoot the target by about 15% (trimmed
        calibration, nfl.timing.BlockTimer), plus the warm call and the record's write (measured
        on 2 idle cores: 7.8 ms a cell and round with 2 ms blocks)."""
        return REPEATS * 1.15 * self.block_s + 0.001

    def measurement(self) -> str:
        """The part of a cell's identity that changes its numbers (rounds excepted: each round is
        stored apart, so a resumed run may ask for more)."""
        mode = "quick" if self.quick else "full"
        blocks = f"fastest of {REPEATS} blocks >= {1e3 * self.block_s:g} ms"
        return f"{mode}, {threads(self.threads)}, {self.clock}, {blocks}, {self.device_name}"


def timing_settings(setup: StudySetup) -> TimingSettings:
    """One CPU thread unless ``--threads`` (these models are far too small to share out);
    ``--quick`` takes fewer, shorter rounds."""
    on_cpu = setup.device.type == "cpu"
    threads = (setup.args.threads or 1) if on_cpu else torch.get_num_threads()
    rounds = vars(setup.args).get("rounds") or (QUICK_ROUNDS if setup.quick else FULL_ROUNDS)
    name = cpu_name() if on_cpu else torch.cuda.get_device_name(setup.device)
    block = 0.002  # short blocks: under load more of them run through uncut, and the fastest of 3 is kept
    clock = clock_for(setup.device, threads)
    return TimingSettings(rounds, 2 if setup.quick else 3, block, threads, clock, name, setup.quick)


def run_timed(
    setup: StudySetup, study: str, plan: dict | None, prepare: Callable[[Cell], tuple[Callable[[], Any], dict]]
) -> list[dict[str, Any]]:
    """Time the cells of ``study`` in interleaved rounds into ``<out>/<study>.jsonl``.

    ``prepare(cell)`` returns the callable to time and the record fields beside the timing; it
    runs once per cell, at the cell's first block. Exits 130 with a resume hint if stopped.
    """
    settings = timing_settings(setup)
    cells = [dataclasses.replace(c, measurement=settings.measurement())
             for c in setup.cells(study, setup.seeds[:1], plan)]
    setup.prepare_out()
    env, config = environment(setup.device), setup.config.to_dict()
    env["cpu_threads"] = settings.threads  # the threads the timings ran with, not the study's
    timers: dict[Cell, tuple[BlockTimer, dict]] = {}

    def measure_once(cell: Cell) -> dict[str, Any]:
        if cell not in timers:
            fn, fields = prepare(cell)
            timer = BlockTimer(fn, setup.device, settings.threads, warmup=settings.warmup, target_s=settings.block_s,
                                repeats=REPEATS)
            timers[cell] = timer, fields
        timer, fields = timers[cell]
        block = timer()
        return {**fields, "block": block, "command": setup.command(), "rerun": setup.rerun_command(cell),
                "config": config, "env": env}

    store = ResultStore(setup.out / f"{study}.jsonl")
    try:
        records = run_rounds(cells, measure_once, store, rounds=settings.rounds, seed=setup.config.seed,
                             resume=setup.args.resume, desc=study, seconds_per_block=settings.seconds_per_block())
    except SweepInterrupted as stop:
        print(f"{stop} (one per cell and round); resume with: {setup.command(resume=True)}", file=sys.stderr)
        raise SystemExit(130) from None
    for record in records:
        record["timing"].update(num_threads=settings.threads, device_name=settings.device_name)
    return records


def prepare(setup: StudySetup, cell: Cell) -> tuple[Callable[[], Any], dict]:
    _, pretrained, _ = setup.pretrained(cell.seed)
    names = adapters.trained_layer_names(pretrained, cell.method, target_layer_names(setup.config.targets))
    layers = [pretrained.get_submodule(n) for n in names]
    params = adapters.get(cell.method).expected_params([(m.out_features, m.in_features) for m in layers], cell.rank)
    fn = prepared_init(cell.method, layers, cell.rank, setup.device, seed=cell.seed)
    return fn, {"summary": {"trainable_params": params}}


def run(setup: StudySetup, plan: dict | None = None) -> list[dict[str, Any]]:
    """Every adapter method over the ranks (full fine-tuning initialises nothing and is left out)."""
    if plan is None and all(adapters.get(m).adapter is None for m in setup.methods):
        cli.fail("--methods: init_time times adapters; full fine-tuning initialises nothing, so name an adapter")
    plan = setup.method_ranks if plan is None else plan
    plan = {m: r for m, r in plan.items() if adapters.get(m).adapter is not None}
    return run_timed(setup, "init_time", plan, lambda cell: prepare(setup, cell))


def summary(records: list[dict[str, Any]], column: str) -> str:
    """The table: the fastest round (and the median) on the clock, and the wall clock's fastest."""
    clock = clock_label(records)
    rows = [
        {"method": adapters.get(r["method"]).label, "rank": "-" if r["rank"] is None else r["rank"],
         "params": f"{r['summary']['trainable_params']:,}", f"{column}, {clock}": format_ms(r["timing"]),
         "wall ms": f"{1e3 * r['timing']['wall_fastest_s']:.3f}"}
        for r in records
    ]
    return format_table(rows, ["method", "rank", "params", f"{column}, {clock}", "wall ms"])


def checks(records: list[dict[str, Any]]) -> list[str]:
    """What the timings can and cannot be trusted for: how they were taken, load, noise."""
    t = records[0]["timing"]
    lines = [
        f"timings: ms per call, the fastest of {t['rounds']} interleaved rounds (the median beside it), "
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


def add_rounds_argument(parser: argparse.ArgumentParser, default: int | None, default_help: str) -> None:
    """``--rounds N``: the interleaved rounds of the study's timing sweeps (a positive integer)."""
    def positive(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
        return int(text)

    parser.add_argument("--rounds", type=positive, default=default,
                        help=f"interleaved timing rounds, each timing every cell once ({default_help})")


def timing_outputs(
    study: str, title: str, column: str, unit: str, extra_checks: Callable[[list[dict]], list[str]] = lambda r: [],
) -> Callable[[Stores, Path], Outputs]:
    """The ``outputs`` of a timing study: its table with the checks and the noise line, and its figure."""

    def outputs(stores: Stores, out: Path) -> Outputs:
        from figures.efficiency import cost_figure
        from figures.style import save  # here: matplotlib costs a second of every start-up

        records = stores[study]
        t = records[0]["timing"]
        subtitle = f"{t['device_name']}, {threads(t['num_threads'])}, width {config_of(records).model.width}"
        lines = [summary(records, column), "", *checks(records), *extra_checks(records),
                 noisy_line(records, t["num_threads"])]
        return {study: "\n".join(lines)}, save(cost_figure(records, title, unit, subtitle), out / study)

    return outputs


STORES = ("init_time",)
outputs = timing_outputs("init_time", "Initialisation time", "init ms", "model")


def timing_main(argv: Sequence[str] | None, study: str, description: str, run: Callable[[StudySetup], list[dict]],
                outputs: Callable[[Stores, Path], Outputs]) -> None:
    """The command line shared by the timing studies: rounds, then the study's outputs."""
    parser = study_parser(study, description, ranks_help=",".join(map(str, SWEEP_RANKS)))
    add_rounds_argument(parser, None, f"default {FULL_ROUNDS}; {QUICK_ROUNDS} with --quick")
    setup = StudySetup(parser, argv, default_ranks=SWEEP_RANKS)
    setup.show(outputs({study: run(setup)}, setup.out), [setup.out / f"{study}.jsonl"])


def main(argv: Sequence[str] | None = None) -> None:
    timing_main(argv, "init_time", __doc__.splitlines()[0], run, outputs)


if __name__ == "__main__":
    main()
