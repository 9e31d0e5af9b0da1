"""Rank and budget: test loss and forgetting against trainable parameters, ranks 1 … 64.

Every method at every rank of ``SWEEP_RANKS`` (those it can take; full fine-tuning once) is adapted
from the same pretrained model per seed at every learning rate of the grid, exactly as
``studies.adaptability`` adapts it (its ``compute_group`` makes each group), and each (method, rank)
is reported at its tuned learning rate. The records keep its summary -- the shifted-task test loss
at the selected step, the base-task test loss after adaptation ("forgetting") -- and the
shifted-task loss before adaptation, not the per-step histories. Writes ``rank.{png,pdf}``: both
against trainable parameters, one line per method, mean ± 95% CI over seeds, and a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import adapters
from nfl.selection import at_tuned_lr, tune
from nfl.sweep import Cell
from studies import adaptability
from studies.common import SWEEP_RANKS, StudySetup, format_table, quality_cell, study_parser
from studies.outputs import Outputs, Stores, config_of


def compute_group(setup: StudySetup, cells: list[Cell]) -> list[dict[str, Any]]:
    """``adaptability.compute_group``'s summaries, plus the shifted-task test loss before the first step."""
    return [
        {"summary": {**result["summary"], "shifted_test_loss_before": result["history"]["test_loss"][0]}}
        for result in adaptability.compute_group(setup, cells)
    ]


def run(setup: StudySetup) -> list[dict[str, Any]]:
    return setup.run_groups("rank", lambda cells: compute_group(setup, cells), setup.groups("rank"))


def summary_table(records: list[dict[str, Any]]) -> str:
    """One row per (method, rank) at its tuned lr: parameters, test loss and forgetting, mean ± 95% CI."""
    rows = []
    for tuned in tune(records):
        row = {"method": adapters.get(tuned.method).label, "rank": "-" if tuned.rank is None else str(tuned.rank)}
        summaries = [r["summary"] for r in tuned.records]
        if not summaries:
            rows.append({**row, "lr": "every lr diverged on some seed"})
            continue
        rows.append({
            **row, "params": f"{summaries[0]['trainable_params']:,}", "lr": f"{tuned.lr:.3g}",
            "test loss": quality_cell(summaries, "test_loss"),
            "base-task loss after": quality_cell(summaries, "forgetting_base_test_loss"),
        })
    return format_table(rows, ["method", "rank", "params", "lr", "test loss", "base-task loss after"])


STORES = ("rank",)


def outputs(stores: Stores, out: Path) -> Outputs:
    """The table and ``rank.{png,pdf}``, each (method, rank) at its tuned lr."""
    from figures.rank import rank_figure
    from figures.records import diverged_note
    from figures.style import save  # here: matplotlib costs a second of every start-up

    records = stores["rank"]
    cfg = config_of(records)
    tuned = at_tuned_lr(records)
    figure = rank_figure(tuned, f"preset {cfg.preset}, width {cfg.model.width}, tuned lr")
    return {"rank": summary_table(records)}, save(figure, out / "rank", diverged_note(tuned))


def main(argv: Sequence[str] | None = None) -> None:
    parser = study_parser("rank", __doc__.splitlines()[0], ranks_help=",".join(map(str, SWEEP_RANKS)))
    setup = StudySetup(parser, argv, default_ranks=SWEEP_RANKS)
    setup.show(outputs({"rank": run(setup)}, setup.out), [setup.out / "rank.jsonl"])


if __name__ == "__main__":
    main()
