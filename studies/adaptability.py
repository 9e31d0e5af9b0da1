"""How close does each method get to full fine-tuning? Test-loss curves on the shifted task.

Pretrains once per seed, adapts a copy with every method from the same weights and data at every
learning rate of the grid, and writes one JSON line per (method, rank, seed, lr) with the history
and a summary. Each (method, rank) is then reported at its tuned learning rate (lowest mean
validation loss over seeds; ``nfl.selection``): a table of test losses at the steps validation
selected, and the figure ``adaptability_loss.{png,pdf}`` (test loss, mean over seeds, 95% band).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

import adapters
from nfl import seeds, testbeds
from nfl.batched import can_batch, train_batched
from nfl.config import format_lr_grid
from nfl.params import count_trainable
from nfl.selection import at_tuned_lr, run_summary, tune
from nfl.sharpness import lambda_max
from nfl.sweep import Cell
from nfl.training import History, adaptation_batches, evaluate, first_batch, initial_gradient_norms, prepare, train
from studies.common import StudySetup, format_table, quality_cell, study_parser
from studies.outputs import Outputs, Stores, config_of, seed_count


def _sharpness(setup: StudySetup, cell: Cell) -> float:
    """λ_max at initialisation of the shifted task's training loss at the first step's batch, for this
    method and seed."""
    data, pretrained, _ = setup.pretrained(cell.seed)
    model, _ = prepare(pretrained, cell.method, setup.config, cell.rank, cell.seed)
    x, y = first_batch(setup.config, data.shifted, cell.seed)
    generator = seeds.generator(cell.seed, "sharpness", cell.method)
    return lambda_max(model, x, y, generator, tol=setup.testbed.SHARPNESS_TOL, loss_fn=setup.testbed.loss_fn)


def compute_group(setup: StudySetup, cells: list[Cell]) -> list[dict[str, Any]]:
    """One (method, rank)'s runs, every seed at every learning rate, trained together: their records."""
    cfg, loss_fn = setup.config, setup.testbed.loss_fn
    runs = [prepare(setup.pretrained(c.seed)[1], c.method, cfg, c.rank, c.seed) for c in cells]
    data = [setup.pretrained(c.seed)[0] for c in cells]
    # The initial gradient norms and λ_max depend on the seed, not the lr: once per seed, on its first run.
    first_of_seed = {c.seed: i for i, c in reversed(list(enumerate(cells)))}
    norms = {seed: initial_gradient_norms(runs[i][0], *first_batch(cfg, data[i].shifted, seed), runs[i][1], loss_fn)
             for seed, i in first_of_seed.items()}
    sharpness = {seed: _sharpness(setup, cells[i]) for seed, i in first_of_seed.items()}
    histories = train_runs(setup, runs, [d.shifted for d in data], [c.lr for c in cells], [c.seed for c in cells])
    return [
        record(setup, c, model, hooks, history, norms[c.seed], sharpness[c.seed])
        for c, (model, hooks), history in zip(cells, runs, histories)
    ]


def train_runs(
    setup: StudySetup, runs: list[tuple[torch.nn.Module, list]], data: list, lrs: list[float], run_seeds: list[int]
) -> list[History]:
    """Train prepared runs of one method: all at once with the batched engine (exactly the sequential
    numbers; tests/test_batched.py), or one after another with ``--engine sequential``; each run draws
    its own minibatches (where the testbed draws any) from its seed's adaptation stream."""
    cfg = setup.config
    epochs = cfg.train.adapt_epochs
    sources = [adaptation_batches(cfg, d, seed) for d, seed in zip(data, run_seeds)]
    options = {"loss_fn": setup.testbed.loss_fn, "eval_every": setup.testbed.eval_every(cfg)}
    if setup.engine == "batched" and all(can_batch(hooks) for _, hooks in runs):
        batches = None if sources[0] is None else sources
        return train_batched([m for m, _ in runs], [h for _, h in runs], data, epochs, lrs, batches=batches, **options)
    return [train(model, d, epochs, lr, hooks, batches=source, **options)
            for (model, hooks), d, lr, source in zip(runs, data, lrs, sources)]


def record(
    setup: StudySetup, cell: Cell, model: torch.nn.Module, hooks: list, history: History,
    grads: tuple[float, float | None], sharpness: float,
) -> dict[str, Any]:
    """A run's history and summary: the test loss at the step validation selected, and the rest."""
    data, pretrained, pre_history = setup.pretrained(cell.seed)
    testbed = setup.testbed
    finished = history.diverged_at is None  # a diverged run has no quality to report
    early = max(1, len(history.test_loss) // 10)  # a tenth of the way in, in evaluations
    base_test = lambda m: evaluate(m, data.base.x_test, data.base.y_test, testbed.loss_fn)  # noqa: E731
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
            "pretrained_base_test_loss": base_test(pretrained),
            # The testbed's reference (the MLP's zero predictor, the GPT's unigram entropy), in its metric.
            "base_zero_loss": testbed.reference(data.base),
            "shifted_zero_loss": testbed.reference(data.shifted),
            # On the base task's test split, at the step validation selected (the forgetting a user would see).
            "forgetting_base_test_loss": base_test(model) if finished else None,
            # Effective rank of each adapted layer's update (AdaLoRA's after its rank allocation).
            "delta_rank": [int(torch.linalg.matrix_rank(a.delta_weight().detach())) for a in hooks]
            if finished
            else None,
        },
    }


def run(setup: StudySetup, plan: dict[str, list[int | None]] | None = None) -> list[dict[str, Any]]:
    """Every (method, rank) at every seed and grid lr, computed or read back from
    ``<out>/adaptability.jsonl``."""
    return setup.run_groups(
        "adaptability", lambda cells: compute_group(setup, cells), setup.groups("adaptability", plan=plan)
    )


def summary_rows(records: list[dict[str, Any]], metric: str = "MSE") -> list[dict[str, str]]:
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
        for key, column, digits in columns(metric):
            row[column] = quality_cell(mine, key, digits)
        rows.append(row)
    return rows


def columns(metric: str) -> tuple[tuple[str, str, int], ...]:
    """(summary key, column, digits) of the quality columns, named in the testbed's metric."""
    if metric == "MSE":
        test, base = "test loss", "base-task loss after"
    else:
        test, base = f"test {metric}", f"base-task {metric} after"
    return (("test_loss", test, 4), ("selected_step", "step", 0), ("forgetting_base_test_loss", base, 4))


def testbed_of(records: list[dict[str, Any]]) -> ModuleType:
    """The testbed the records were made on (records made before there were testbeds: the MLP)."""
    return testbeds.get(records[0].get("config", {}).get("testbed", "mlp") if records else "mlp")


def report(records: list[dict[str, Any]]) -> str:
    """The pretrained model against the testbed's reference (the zero predictor, the unigram entropy),
    then the per-method table."""
    testbed = testbed_of(records)
    reference, metric = testbed.REFERENCE, testbed.METRIC
    base = np.mean([r["summary"]["pretrained_base_val_loss"] for r in records])
    zero = np.mean([r["summary"]["base_zero_loss"] for r in records])
    shifted_zero = np.mean([r["summary"]["shifted_zero_loss"] for r in records])
    share = base / zero  # "learnt" needs at most half the reference's loss, not merely below it
    if share <= 0.5:
        verdict = f"learnt the base task: {share:.0%} of the {reference}'s loss"
    elif share < 1:
        verdict = f"NOT CLEARLY LEARNT: {share:.0%} of the {reference}'s loss; learnt needs <= 50%"
    elif testbed.NAME == "mlp":  # the words the MLP's report has always used
        verdict = "NO BETTER THAN PREDICTING ZERO: the results below mean little"
    else:
        verdict = f"NO BETTER THAN THE {reference.upper()}: the results below mean little"
    header = (
        f"pretrained model, base task: validation {metric} {base:.4f} vs {reference} {zero:.4f} ({verdict})\n"
        f"shifted task: {reference} {shifted_zero:.4f}\n"
    )
    lrs = sorted({r["lr"] for r in records})
    grid = f"learning rate chosen per (method, rank) by mean validation loss over seeds from {format_lr_grid(lrs)}"
    spec = records[0].get("config", {}).get("hparams") if records else None
    header += f"hyper-parameters set (--hparams): {spec}\n" if spec else ""
    names = ["method", "rank", "params", "lr", "seeds", *(column for _, column, _ in columns(metric))]
    return (header + grid + f"; test {metric} at the step validation selected\n"
            + format_table(summary_rows(records, metric), names))


STORES = ("adaptability",)


def outputs(stores: Stores, out: Path) -> Outputs:
    """The table, ``adaptability_loss.{png,pdf}`` (test-loss curves at each method's tuned lr) and, on a
    testbed whose base task is other text than the shifted one (gpt), ``learning_forgetting.{png,pdf}``."""
    from figures.curves import loss_curves_figure
    from figures.records import diverged_note
    from figures.style import save  # here: matplotlib costs a second of every start-up

    records = stores["adaptability"]
    cfg = config_of(records)
    testbed = testbeds.get(cfg.testbed)
    shifted_zero = float(np.mean([r["summary"]["shifted_zero_loss"] for r in records]))
    title = f"testbed {cfg.testbed}, preset {cfg.preset}, width {cfg.width}, {seed_count(records)} seed(s)"
    tuned = at_tuned_lr(records)
    figure = loss_curves_figure(tuned, zero_loss=shifted_zero, title=title + ", each method at its tuned lr",
                                key="test_loss", metric=testbed.METRIC, reference=testbed.REFERENCE)
    paths = save(figure, out / "adaptability_loss", diverged_note(tuned))
    if cfg.testbed != "mlp":
        from figures.forgetting import learning_forgetting_figure, pretrained_point

        figure = learning_forgetting_figure(tuned, pretrained_point(records), testbed.METRIC, title)
        paths += save(figure, out / "learning_forgetting", diverged_note(tuned))
    return {"adaptability": report(records)}, paths


def main(argv: Sequence[str] | None = None) -> None:
    setup = StudySetup(study_parser("adaptability", __doc__.splitlines()[0]), argv)
    setup.show(outputs({"adaptability": run(setup)}, setup.out), [setup.out / "adaptability.jsonl"])

if __name__ == "__main__":
    main()
