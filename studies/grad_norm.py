"""Figure 1: the gradient norm at the first adaptation step, per method and against rank.

A method whose update starts at zero (LoRA's B = 0, MiSS's D = 0, ...) gets at its first step only
the gradient that flows to its other factor; how large that first gradient is, next to full
fine-tuning's, is the MiSS paper's Figure 1 argument about how fast a method can start to learn.
"""

from __future__ import annotations

from typing import Any, Sequence

import adapters
from figures.grad_norm import grad_norm_figure
from figures.records import diverged_note
from figures.style import save
from nfl.sweep import Cell
from nfl.training import adapt
from studies.common import SWEEP_RANKS, StudySetup, format_table, group_summaries, quality_cell, study_parser, with_epochs


def compute(setup: StudySetup, cell: Cell) -> dict[str, Any]:
    """The L2 norm of the first step's gradient over the trainable parameters."""
    data, pretrained, _ = setup.pretrained(cell.seed)
    result = adapt(pretrained, cell.method, with_epochs(setup.config, 1), data.shifted, rank=cell.rank, seed=cell.seed)
    history = result.history
    first = history.grad_norm[0] if history.grad_norm else None
    return {"summary": {"initial_grad_norm": first, "diverged_at": history.diverged_at, "trainable_params": result.trainable_params}}


def run(setup: StudySetup) -> list[dict[str, Any]]:
    return setup.run("grad_norm", lambda cell: compute(setup, cell))


def summary(records: list[dict[str, Any]]) -> str:
    rows = []
    for (method, rank), summaries in group_summaries(records).items():
        rows.append({"method": adapters.get(method).label, "rank": "-" if rank is None else rank, "initial grad norm": quality_cell(summaries, "initial_grad_norm", digits=5)})
    return format_table(rows, ["method", "rank", "initial grad norm"])


def main(argv: Sequence[str] | None = None) -> None:
    parser = study_parser("grad_norm", __doc__.splitlines()[0], ranks_help=",".join(map(str, SWEEP_RANKS)))
    setup = StudySetup(parser, argv, default_ranks=SWEEP_RANKS)
    records = run(setup)
    paths = save(grad_norm_figure(records, setup.config), setup.out / "grad_norm", diverged_note(records))
    print(summary(records))
    print(f"\nrecords: {setup.out / 'grad_norm.jsonl'}\nfigure:  {', '.join(map(str, paths))}")


if __name__ == "__main__":
    main()
