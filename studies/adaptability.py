"""How close does each method get to full fine-tuning? Test-loss curves on the shifted task.

Pretrains once per seed, adapts a copy with every method from the same weights and data at every
learning rate of the grid, and writes one JSON line per (method, rank, seed, lr) with the history
and a summary. Each (method, rank) is then reported at its tuned learning rate (lowest mean
validation loss over seeds; ``nfl.selection``): a table of test losses at the steps validation
selected, and the figure ``adaptability_loss.{png,pdf}`` (test loss, mean over seeds, 95% band).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

import adapters
from nfl import seeds
from nfl.batched import can_batch, train_batched
from nfl.params import count_trainable
from nfl.config import format_lr_grid
from nfl.selection import at_tuned_lr, run_summary, tune
from nfl.sharpness import lambda_max
from nfl.sweep import Cell
from nfl.training import History, evaluate, initial_gradient_norms, prepare, train
from studies.common import StudySetup, format_table, quality_cell, study_parser
from studies.outputs import Outputs, Stores, config_of, seed_count


def _sharpness(setup: StudySetup, cell: Cell) -> float:
    """λ_max at initialisation of the shifted task's training loss, for this method and seed."""
    data, pretrained, _ = setup.pretrained(cell.seed)
    model, _ = prepare(pretrained, cell.method, setup.config, cell.rank, cell.seed)
    return lambda_max(model, data.shifted.x_train, data.shifted.y_train, seeds.generator(cell.seed, "sharpness", cell.method))


def compute_group(setup: StudySetup, cells: list[Cell]) -> list[dict[str, Any]]:
    """One (method, rank)'s runs, every seed at every learning rate, trained together: their records."""
    cfg = setup.config
    runs = [prepare(setup.pretrained(c.seed)[1], c.method, cfg, c.rank, c.seed) for c in cells]
    data = [setup.pretrained(c.seed)[0] for c in cells]
    norms = [initial_gradient_norms(model, d.shifted, hooks) for (model, hooks), d in zip(runs, data)]
    first_of_seed = {c.seed: c for c in reversed(cells)}  # λ_max depends on the seed, not the lr
    sharpness = {seed: _sharpness(setup, cell) for seed, cell in first_of_seed.items()}
    histories = train_runs(setup, runs, [d.shifted for d in data], [c.lr for c in cells])
    return [
        record(setup, c, model, hooks, history, grads, sharpness[c.seed])
        for c, (model, hooks), history, grads in zip(cells, runs, histories, norms)
    ]


def train_runs(setup: StudySetup, runs: list[tuple[torch.nn.Module, list]], data: list, lrs: list[float]) -> list[History]:
    """Train prepared runs of one method: all at once with the batched engine (exactly the sequential
    numbers; tests/test_batched.py), or one after another with ``--engine sequential``."""
    epochs = setup.config.train.adapt_epochs
    if setup.engine == "batched" and all(can_batch(hooks) for _, hooks in runs):
        return train_batched([m for m, _ in runs], [h for _, h in runs], data, epochs, lrs)
    return [train(model, d, epochs, lr, hooks) for (model, hooks), d, lr in zip(runs, data, lrs)]


def record(
    setup: StudySetup, cell: Cell, model: torch.nn.Module, hooks: list, history: History,
    grads: tuple[float, float | None], sharpness: float,
) -> dict[str, Any]:
    """A run's history and summary: the test loss at the step validation selected, and the rest."""
    data, _, pre_history = setup.pretrained(cell.seed)
    finished = history.diverged_at is None  # a diverged run has no quality to report
    early = max(1, setup.config.train.adapt_epochs // 10)
    return {
        "history": history.to_dict(),
        "summary": {
            "trainable_params": count_trainable(model),
            "diverged_at": history.diverged_at,
            **run_summary(history),
            "final_test_loss": history.test_loss[-1] if finished else None,
            # How far a run has come a tenth of the way in (the papers' "converges faster early").
            "early_test_loss": history.test_loss[early] if finished and len(history.test_loss) > early else None,
            "initial_grad_norm": grads[0],
            "initial_regularizer_grad_norm": grads[1],
            "sharpness": sharpness,
            "pretrained_base_val_loss": pre_history.final_val_loss,
            "base_zero_loss": data.base.zero_loss,
            "shifted_zero_loss": data.shifted.zero_loss,
            # On the base task's test split, after the last step (the forgetting a user would see).
            "forgetting_base_test_loss": evaluate(model, data.base.x_test, data.base.y_test) if finished else None,
            # Effective rank of each adapted layer's update (AdaLoRA's after its rank allocation).
            "delta_rank": [int(torch.linalg.matrix_rank(a.delta_weight().detach())) for a in hooks] if finished else None,
        },
    }


def run(setup: StudySetup, plan: dict[str, list[int | None]] | None = None) -> list[dict[str, Any]]:
    """Every (method, rank) at every seed and grid lr, computed or read back from
    ``<out>/adaptability.jsonl``."""
    return setup.run_groups("adaptability", lambda cells: compute_group(setup, cells), setup.groups("adaptability", plan=plan))


def summary_rows(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per (method, rank) at its tuned learning rate: the test loss at each run's selected
    step, that step, and the base-task test loss after adaptation (mean ± 95% CI over seeds)."""
    rows = []
    for tuned in tune(records):
        row = {"method": adapters.get(tuned.method).label, "rank": "-" if tuned.rank is None else tuned.rank}
        if tuned.lr is None:
            rows.append({**row, "lr": "every lr diverged on some seed"})
            continue
        mine = [r["summary"] for r in tuned.records]
        row.update({"params": f"{mine[0]['trainable_params']:,}", "lr": f"{tuned.lr:.3g}", "seeds": str(len(mine))})
        for key, column, digits in COLUMNS:
            row[column] = quality_cell(mine, key, digits)
        rows.append(row)
    return rows


COLUMNS = (("test_loss", "test loss", 4), ("selected_step", "step", 0), ("forgetting_base_test_loss", "base-task loss after", 4))


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
    lrs = sorted({r["lr"] for r in records})
    grid = f"learning rate chosen per (method, rank) by mean validation loss over seeds from {format_lr_grid(lrs)}"
    columns = ["method", "rank", "params", "lr", "seeds", *(column for _, column, _ in COLUMNS)]
    return header + grid + "; test loss at the step validation selected\n" + format_table(summary_rows(records), columns)


STORES = ("adaptability",)


def outputs(stores: Stores, out: Path) -> Outputs:
    """The table and ``adaptability_loss.{png,pdf}``: test-loss curves at each method's tuned lr."""
    from figures.curves import loss_curves_figure
    from figures.records import diverged_note
    from figures.style import save  # here: matplotlib costs a second of every start-up

    records = stores["adaptability"]
    cfg = config_of(records)
    shifted_zero = float(np.mean([r["summary"]["shifted_zero_loss"] for r in records]))
    title = f"preset {cfg.preset}, width {cfg.model.width}, {seed_count(records)} seed(s), each method at its tuned lr"
    tuned = at_tuned_lr(records)
    figure = loss_curves_figure(tuned, zero_loss=shifted_zero, title=title, key="test_loss")
    return {"adaptability": report(records)}, save(figure, out / "adaptability_loss", diverged_note(tuned))


def main(argv: Sequence[str] | None = None) -> None:
    setup = StudySetup(study_parser("adaptability", __doc__.splitlines()[0]), argv)
    setup.show(outputs({"adaptability": run(setup)}, setup.out), [setup.out / "adaptability.jsonl"])


if __name__ == "__main__":
    main()
