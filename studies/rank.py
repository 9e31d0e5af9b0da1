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
from figures.records import aggregate
from figures.style import save
from nfl.sweep import Cell
from studies import adaptability
from studies.common import SWEEP_RANKS, StudySetup, format_table, study_parser


def compute(setup: StudySetup, cell: Cell) -> dict[str, Any]:
    """``adaptability.compute``'s summary, plus the shifted-task loss before the first step."""
    result = adaptability.compute(setup, cell)
    return {"summary": {**result["summary"], "shifted_val_loss_before": result["history"]["val_loss"][0]}}


def run(setup: StudySetup) -> list[dict[str, Any]]:
    return setup.run("rank", lambda cell: compute(setup, cell))


def summary_table(records: list[dict[str, Any]]) -> str:
    """One row per (method, rank): parameters, min validation loss and forgetting, mean ± 95% CI."""
    columns = {"min_val_loss": "min val loss", "forgetting_base_val_loss": "base-task loss after"}
    points = {key: aggregate(records, lambda r, key=key: r["summary"][key]) for key in columns}
    rows = []
    for i, p in enumerate(points["min_val_loss"]):
        row = {"method": adapters.get(p.method).label, "rank": "-" if p.rank is None else str(p.rank), "params": f"{p.params:,}"}
        for key, column in columns.items():
            q = points[key][i]
            row[column] = f"{q.mean:.4f} ± {q.half:.4f}"
        rows.append(row)
    return format_table(rows, ["method", "rank", "params", *columns.values()])


def main(argv: Sequence[str] | None = None) -> None:
    parser = study_parser("rank", __doc__.splitlines()[0], ranks_help=",".join(map(str, SWEEP_RANKS)))
    setup = StudySetup(parser, argv, default_ranks=SWEEP_RANKS)
    records = run(setup)
    cfg = setup.config
    paths = save(rank_figure(records, f"preset {cfg.preset}, width {cfg.model.width}"), setup.out / "rank")
    print(summary_table(records))
    print(f"\nrecords: {setup.out / 'rank.jsonl'}\nfigure:  {', '.join(map(str, paths))}")


if __name__ == "__main__":
    main()
