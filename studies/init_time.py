"""Initialisation time against trainable parameters: every method at ranks 1 ... 64.

Times everything a method does from a fresh pretrained layer on the device to a ready adapter
(argument checks, SVDs, random projections, copies), in interleaved rounds (nfl.measure.rounds).
This module also holds the command line and table both timing studies share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import adapters
from nfl import cli
from nfl.measure.prepared import prepared_init
from nfl.measure.rounds import clock_label, format_ms, noisy_line
from nfl.measure.runner import add_rounds_argument, checks, quick_note, run_timed, threads
from nfl.sweep import Cell
from studies.common import SWEEP_RANKS, StudySetup, format_table, study_parser
from studies.outputs import Outputs, Stores, config_of


def prepare(setup: StudySetup, cell: Cell) -> tuple[Callable[[], Any], dict]:
    _, pretrained, _ = setup.pretrained(cell.seed)
    names = adapters.trained_layer_names(pretrained, cell.method, setup.testbed.target_modules(setup.config))
    layers = [pretrained.get_submodule(n) for n in names]
    hparams = setup.config.hparams_of(cell.method)
    shapes = [(m.out_features, m.in_features) for m in layers]
    params = adapters.get(cell.method).expected_params(shapes, cell.rank, **hparams)
    fn = prepared_init(cell.method, layers, cell.rank, setup.device, seed=cell.seed, **hparams)
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


def timing_outputs(
    study: str, title: str, column: str, unit: str, extra_checks: Callable[[list[dict]], list[str]] = lambda r: [],
) -> Callable[[Stores, Path], Outputs]:
    """The ``outputs`` of a timing study: its table with the checks and the noise line, and its figure."""

    def outputs(stores: Stores, out: Path) -> Outputs:
        from figures.efficiency import cost_figure
        from figures.style import save  # here: matplotlib costs a second of every start-up

        records = stores[study]
        t = records[0]["timing"]
        subtitle = f"{t['device_name']}, {threads(t['num_threads'])}, width {config_of(records).width}"
        subtitle += quick_note(records)
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
    add_rounds_argument(parser)
    setup = StudySetup(parser, argv, default_ranks=SWEEP_RANKS)
    setup.show(outputs({study: run(setup)}, setup.out), [setup.out / f"{study}.jsonl"])


def main(argv: Sequence[str] | None = None) -> None:
    timing_main(argv, "init_time", __doc__.splitlines()[0], run, outputs)


if __name__ == "__main__":
    main()
