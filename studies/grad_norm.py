"""Figure 1: the gradient norm at the first adaptation step, per method and against rank.

A method whose update starts at zero (LoRA's B = 0, MiSS's D = 0, ...) gets at its first step only
the gradient that flows to its other factor; how large that first gradient is, next to full
fine-tuning's, is the MiSS paper's Figure 1 argument about how fast a method can start to learn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import adapters
from nfl.params import count_trainable
from nfl.sweep import Cell
from nfl.training import first_batch, initial_gradient_norms, prepare
from studies.common import SWEEP_RANKS, StudySetup, format_table, group_summaries, quality_cell, study_parser
from studies.outputs import Outputs, Stores, config_of


def compute(setup: StudySetup, cell: Cell) -> dict[str, Any]:
    """The L2 norms, over the trainable parameters, of the first step's task-loss gradient and of
    the regulariser's gradient apart (AdaLoRA's orthogonality penalty; None without one)."""
    data, pretrained, _ = setup.pretrained(cell.seed)
    model, hooks = prepare(pretrained, cell.method, setup.config, cell.rank, cell.seed)
    x, y = first_batch(setup.config, data.shifted, cell.seed)
    task, regularizer = initial_gradient_norms(model, x, y, hooks, setup.testbed.loss_fn)
    finite = math.isfinite(task)
    return {"summary": {
        "initial_grad_norm": task, "initial_regularizer_grad_norm": regularizer,
        "diverged_at": None if finite else 0, "trainable_params": count_trainable(model),
    }}


def run(setup: StudySetup, cells: list[Cell] | None = None) -> list[dict[str, Any]]:
    """The study's cells (default: all of them), each one gradient: that is what its estimate counts."""
    return setup.run("grad_norm", lambda cell: compute(setup, cell), cells, steps=1)


def summary(records: list[dict[str, Any]]) -> str:
    rows = []
    for (method, rank), summaries in group_summaries(records).items():
        regularized = summaries[0].get("initial_regularizer_grad_norm") is not None
        rows.append({
            "method": adapters.get(method).label, "rank": "-" if rank is None else rank,
            "initial grad norm": quality_cell(summaries, "initial_grad_norm", digits=5),
            "regulariser's": quality_cell(summaries, "initial_regularizer_grad_norm", digits=5) if regularized else "-",
        })
    return format_table(rows, ["method", "rank", "initial grad norm", "regulariser's"])


STORES = ("grad_norm",)


def outputs(stores: Stores, out: Path) -> Outputs:
    """The table and Figure 1, ``grad_norm.{png,pdf}``."""
    from figures.grad_norm import grad_norm_figure
    from figures.records import diverged_note
    from figures.style import save  # here: matplotlib costs a second of every start-up

    records = stores["grad_norm"]
    figure = grad_norm_figure(records, config_of(records))
    return {"grad_norm": summary(records)}, save(figure, out / "grad_norm", diverged_note(records))


def main(argv: Sequence[str] | None = None) -> None:
    parser = study_parser("grad_norm", __doc__.splitlines()[0], ranks_help=",".join(map(str, SWEEP_RANKS)))
    setup = StudySetup(parser, argv, default_ranks=SWEEP_RANKS)
    setup.show(outputs({"grad_norm": run(setup)}, setup.out), [setup.out / "grad_norm.jsonl"])


if __name__ == "__main__":
    main()
