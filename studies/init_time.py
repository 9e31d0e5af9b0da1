"""Initialisation time against trainable parameters: every method at ranks 1 ... 64.

Times everything a method does from a fresh pretrained layer on the device to a ready adapter
(argument checks, SVDs, random projections, copies), device synchronised; median and IQR.
"""

from __future__ import annotations

from typing import Any, Sequence

import adapters
from figures.efficiency import cost_figure
from figures.style import save
from nfl import cli
from nfl.sweep import Cell
from nfl.timing import TimingOptions, time_init
from studies.common import SWEEP_RANKS, StudySetup, format_table, study_parser


def timing_options(setup: StudySetup) -> TimingOptions:
    threads = setup.args.threads
    if setup.quick:
        return TimingOptions(repeats=15, warmup=2, num_threads=threads, autorange=False)
    return TimingOptions(min_run_time=0.05, max_run_time=0.25, repeats=30, warmup=3, num_threads=threads)


def compute(setup: StudySetup, cell: Cell) -> dict[str, Any]:
    _, pretrained, _ = setup.pretrained(cell.seed)
    layers = [pretrained.get_submodule(n) for n in adapters.registry.trained_layer_names(pretrained, cell.method, setup.config.targets)]
    timing = time_init(cell.method, layers, cell.rank, setup.device, seed=cell.seed, options=timing_options(setup))
    params = adapters.get(cell.method).expected_params([(m.out_features, m.in_features) for m in layers], cell.rank)
    return {"timing": timing.to_dict(), "summary": {"trainable_params": params, "init_ms": 1e3 * timing.median_s}}


def run(setup: StudySetup, plan: dict | None = None) -> list[dict[str, Any]]:
    """Every adapter method over the ranks (full fine-tuning initialises nothing and is left out)."""
    if plan is None and all(adapters.get(m).adapter is None for m in setup.methods):
        cli.fail("--methods: init_time times adapters; full fine-tuning initialises nothing, so name an adapter")
    plan = {m: r for m, r in (setup.method_ranks if plan is None else plan).items() if adapters.get(m).adapter is not None}
    return setup.run("init_time", lambda cell: compute(setup, cell), setup.cells("init_time", setup.seeds[:1], plan))


def summary(records: list[dict[str, Any]], key: str) -> str:
    rows = [
        {"method": adapters.get(r["method"]).label, "rank": "-" if r["rank"] is None else r["rank"], "params": f"{r['summary']['trainable_params']:,}",
         key: f"{1e3 * r['timing']['median_s']:.3f} (IQR {1e3 * r['timing']['iqr_s']:.3f})"}
        for r in records
    ]
    return format_table(rows, ["method", "rank", "params", key])


def timing_main(argv: Sequence[str] | None, study: str, description: str, run, title: str, ylabel: str, column: str) -> None:
    """The command line shared by the timing studies: sweep, figure, table."""
    parser = study_parser(study, description, ranks_help=",".join(map(str, SWEEP_RANKS)))
    setup = StudySetup(parser, argv, default_ranks=SWEEP_RANKS)
    records = run(setup)
    subtitle = f"{records[0]['env']['device_name']}, {records[0]['timing']['num_threads']} thread(s), width {setup.config.model.width}"
    paths = save(cost_figure(records, title, ylabel, subtitle), setup.out / study)
    print(summary(records, column))
    print(f"\nrecords: {setup.out / f'{study}.jsonl'}\nfigure:  {', '.join(map(str, paths))}")


def main(argv: Sequence[str] | None = None) -> None:
    timing_main(argv, "init_time", __doc__.splitlines()[0], run, "Initialisation time", "init time per model (ms, median ± IQR/2)", "init ms")


if __name__ == "__main__":
    main()
