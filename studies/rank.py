"""Rank and budget: minimum validation loss and forgetting against trainable parameters, ranks 1 … 64.

Every method at every rank of ``SWEEP_RANKS`` (those it can take; full fine-tuning once) is adapted
from the same pretrained model per seed, exactly as ``studies.adaptability`` adapts it (its
``compute`` makes each cell). The records keep its summary -- the minimum shifted-task validation
loss, the base-task loss after adaptation ("forgetting") -- and the shifted-task loss before
adaptation, not the per-step histories. Writes ``rank.{png,pdf}``: both against trainable
parameters, one line per method, mean ± 95% CI over seeds, and a table.
"""

from __future__ import annotations

from typing import Any, Sequence

import adapters
from figures.rank import rank_figure
from figures.records import diverged_note
from figures.style import save
from nfl.sweep import Cell
from studies import adaptability
from studies.common import SWEEP_RANKS, StudySetup, format_table, group_summaries, quality_cell, study_parser


def compute(setup: StudySetup, cell: Cell) -> dict[str, Any]:
    """``adaptability.compute``'s summary, plus the shifted-task loss before the first step."""
    result = adaptability.compute(setup, cell)
    return {"summary": {**result["summary"], "shifted_val_loss_before": result["history"]["val_loss"][0]}}


def run(setup: StudySetup) -> list[dict[str, Any]]:
    return setup.run("rank", lambda cell: compute(setup, cell))


def summary_table(records: list[dict[str, Any]]) -> str:
    """One row per (method, rank): parameters, min validation loss and forgetting, mean ± 95% CI."""
    rows = [
        {
            "method": adapters.get(method).label,
            "rank": "-" if rank is None else str(rank),
            "params": f"{summaries[0]['trainable_params']:,}",
            "min val loss": quality_cell(summaries, "min_val_loss"),
            "base-task loss after": quality_cell(summaries, "forgetting_base_val_loss"),
        }
        for (method, rank), summaries in group_summaries(records).items()
    ]
    return format_table(rows, ["method", "rank", "params", "min val loss", "base-task loss after"])


def main(argv: Sequence[str] | None = None) -> None:
    parser = study_parser("rank", __doc__.splitlines()[0], ranks_help=",".join(map(str, SWEEP_RANKS)))
    setup = StudySetup(parser, argv, default_ranks=SWEEP_RANKS)
    records = run(setup)
    cfg = setup.config
    paths = save(rank_figure(records, f"preset {cfg.preset}, width {cfg.model.width}"), setup.out / "rank", diverged_note(records))
    print(summary_table(records))
    print(f"\nrecords: {setup.out / 'rank.jsonl'}\nfigure:  {', '.join(map(str, paths))}")


if __name__ == "__main__":
    main()
