"""How close does each method get to full fine-tuning? Validation-loss curves on the shifted task.

Pretrains once per seed, adapts a copy with every method from the same weights and data, and writes
one JSON line per (method, seed) with the history and a summary, a summary table, and the figure
``adaptability_loss.{png,pdf}`` (mean over seeds with a 95% band).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

import adapters
from figures.curves import loss_curves_figure
from figures.records import diverged_note
from figures.style import save
from nfl.sweep import Cell
from nfl.training import adapt, evaluate
from studies.common import StudySetup, format_table, group_summaries, quality_cell, study_parser


def compute(setup: StudySetup, cell: Cell) -> dict[str, Any]:
    """Adapt the seed's pretrained model with one method: its history and summary."""
    data, pretrained, pre_history = setup.pretrained(cell.seed)
    result = adapt(pretrained, cell.method, setup.config, data.shifted, rank=cell.rank, seed=cell.seed)
    history = result.history
    finished = history.diverged_at is None  # a diverged run has no quality to report
    return {
        "history": history.to_dict(),
        "summary": {
            "trainable_params": result.trainable_params,
            "diverged_at": history.diverged_at,
            "min_val_loss": history.min_val_loss if finished else None,
            "final_val_loss": history.final_val_loss if finished else None,
            "initial_grad_norm": history.grad_norm[0] if history.grad_norm else None,
            "pretrained_base_val_loss": pre_history.final_val_loss,
            "base_zero_loss": data.base.zero_loss,
            "shifted_zero_loss": data.shifted.zero_loss,
            "forgetting_base_val_loss": evaluate(result.model, data.base.x_val, data.base.y_val) if finished else None,
            # Effective rank of each adapted layer's update (AdaLoRA's after its rank allocation).
            "delta_rank": [int(torch.linalg.matrix_rank(a.delta_weight().detach())) for a in result.adapters] if finished else None,
        },
    }


def run(setup: StudySetup) -> list[dict[str, Any]]:
    """Every (method, rank, seed) cell, computed or read back from ``<out>/adaptability.jsonl``."""
    return setup.run("adaptability", lambda cell: compute(setup, cell))


def summary_rows(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per method: parameters, min / final validation loss (mean ± 95% CI), forgetting."""
    rows = []
    for (method, rank), mine in group_summaries(records).items():
        row = {"method": adapters.get(method).label, "rank": "-" if rank is None else rank, "params": f"{mine[0]['trainable_params']:,}", "seeds": str(len(mine))}
        for key, column in (("min_val_loss", "min val loss"), ("final_val_loss", "final val loss"), ("forgetting_base_val_loss", "base-task loss after")):
            row[column] = quality_cell(mine, key)
        rows.append(row)
    return rows


def report(records: list[dict[str, Any]]) -> str:
    """The pretrained model against the zero predictor, then the per-method table."""
    base = np.mean([r["summary"]["pretrained_base_val_loss"] for r in records])
    zero = np.mean([r["summary"]["base_zero_loss"] for r in records])
    shifted_zero = np.mean([r["summary"]["shifted_zero_loss"] for r in records])
    share = base / zero  # "learnt" needs at most half the zero predictor's loss, not merely below it
    if share <= 0.5:
        verdict = f"learnt the base task: {share:.0%} of the zero predictor's loss"
    elif share < 1:
        verdict = f"NOT CLEARLY LEARNT: {share:.0%} of the zero predictor's loss; learnt needs <= 50%"
    else:
        verdict = "NO BETTER THAN PREDICTING ZERO: the results below mean little"
    header = (
        f"pretrained model, base task: validation loss {base:.4f} vs zero predictor {zero:.4f} ({verdict})\n"
        f"shifted task: zero-predictor validation loss {shifted_zero:.4f}\n"
    )
    columns = ["method", "rank", "params", "seeds", "min val loss", "final val loss", "base-task loss after"]
    return header + format_table(summary_rows(records), columns)


def main(argv: Sequence[str] | None = None) -> None:
    parser = study_parser("adaptability", __doc__.splitlines()[0])
    setup = StudySetup(parser, argv)
    records = run(setup)
    shifted_zero = float(np.mean([r["summary"]["shifted_zero_loss"] for r in records]))
    title = f"preset {setup.config.preset}, width {setup.config.model.width}, {len(setup.seeds)} seed(s)"
    paths = save(loss_curves_figure(records, zero_loss=shifted_zero, title=title), setup.out / "adaptability_loss", diverged_note(records))
    print(report(records))
    print(f"\nrecords: {setup.out / 'adaptability.jsonl'}\nfigure:  {', '.join(map(str, paths))}")


if __name__ == "__main__":
    main()
